import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgd
from jgd.serialization import FORMAT


def params():
    model = jgd.models.mlp([3, 4, 1])
    return model.init(jax.random.key(0))


def test_round_trip_keeps_structure_values_dtypes_and_metadata(tmp_path):
    path = tmp_path / "model.npz"
    original = {"layers": params(), "extra": (jnp.arange(3), None), "scale": jnp.float32(2.0)}
    jgd.save(
        path, original, model="mlp", sizes=[3, 4, 1], mean=jnp.array([1.0, 2.0]), note={"a": 1}
    )
    saved = jgd.load(path)
    assert jax.tree.structure(saved.params) == jax.tree.structure(original)
    for a, b in zip(jax.tree.leaves(saved.params), jax.tree.leaves(original)):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    assert saved.metadata["model"] == "mlp" and saved.metadata["sizes"] == [3, 4, 1]
    np.testing.assert_array_equal(saved.metadata["mean"], [1.0, 2.0])
    assert saved.metadata["note"] == {"a": 1}


def test_file_holds_no_pickle(tmp_path):
    path = tmp_path / "model.npz"
    jgd.save(path, params())
    with np.load(path, allow_pickle=False) as npz:  # would raise on any object array
        assert all(npz[name].dtype != object for name in npz.files)


def test_truncated_or_flipped_files_are_refused(tmp_path):
    path = tmp_path / "model.npz"
    jgd.save(path, params())
    raw = path.read_bytes()
    (tmp_path / "short.npz").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match=r"corrupted|truncated"):
        jgd.load(tmp_path / "short.npz")
    # Flip a byte inside the stored array data (zip entries are stored, not compressed).
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("p/0.npy")
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + 128 + 2
    flipped = bytearray(raw)
    flipped[offset] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="corrupted"):
        jgd.load(tmp_path / "flipped.npz")


def test_pickle_bearing_npz_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(
        path, __jgd__=np.frombuffer(b"{}", np.uint8), payload=np.array([{"x": 1}], dtype=object)
    )
    with pytest.raises(ValueError, match="pickled objects; refused"):
        jgd.load(path)


def test_other_files_are_refused(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(ValueError, match="not a jgd file"):
        jgd.load(tmp_path / "plain.npz")
    with pytest.raises(ValueError, match="no such file"):
        jgd.load(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="corrupted"):
        jgd.load(tmp_path / "text.npz")


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    jgd.save(path, {"w": jnp.ones(2)})
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(RuntimeError):
        jgd.save(path, {"w": jnp.zeros(2)})
    assert path.read_bytes() == before  # the old file is intact
    assert os.listdir(tmp_path) == ["model.npz"]  # the temporary file was removed


def test_unsaveable_values_are_rejected(tmp_path):
    with pytest.raises(TypeError, match="metadata 'f'"):
        jgd.save(tmp_path / "x.npz", {"w": jnp.ones(1)}, f=object())
    with pytest.raises(TypeError, match="cannot save"):
        jgd.save(tmp_path / "x.npz", {"w": "text"})
    assert FORMAT.startswith("jgd-params/")
