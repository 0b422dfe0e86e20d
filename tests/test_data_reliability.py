"""Data preparation and saving: the right numbers, or a clear error (issue #14).

Every test here failed before the fixes it covers. References are NumPy
float64 formulas.
"""

import errno
import os
import stat
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import jgd
import jgd._io
import jgd.cli
from jgd._io import check_writable
from jgd.checkpoint import load_state, save_state
from jgd.data import column_statistics, load_csv, standardize
from jgd.estimators import GDRegressor
from tests.helpers import regression_problem

EPS64 = np.finfo(np.float64).eps


def reference_standardize(train_X, X=None):
    """NumPy float64 z-scores with scikit-learn's constant-feature rule."""
    train_X = np.asarray(train_X, np.float64)
    X = train_X if X is None else np.asarray(X, np.float64)
    n = train_X.shape[0]
    mean = train_X.mean(axis=0)
    var = train_X.var(axis=0)
    constant = var <= n * EPS64 * var + (n * mean * EPS64) ** 2
    scale = np.where(constant, 1.0, np.sqrt(var))
    return (X - mean) / scale, mean, scale


def write(tmp_path, text, name="data.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# ------------------------------------------------------- constant features


def test_a_float32_constant_feature_gets_scale_one():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.full(1000, 21.1), rng.normal(size=1000)]).astype(np.float32)
    train = jgd.Dataset(jnp.asarray(X), jnp.zeros(1000))
    train_s, stats = standardize(train)
    assert stats.scale[0] == 1.0
    np.testing.assert_array_equal(train_s.X[:, 0], 0.0)
    # A later value 1 above the training constant is 1 standardized unit, not 1e5..1e16.
    new = np.array([[np.float32(21.1) + 1, 0.0]], np.float32)
    np.testing.assert_allclose(stats.transform(new)[0, 0], 1.0, rtol=1e-6)


def test_the_estimator_uses_the_same_constant_rule():
    rng = np.random.default_rng(1)
    X = np.column_stack([np.full(50, 0.1), rng.normal(size=50)])
    y = 2 * X[:, 1] + 21.0
    model = GDRegressor(epochs=5).fit(X, y)
    _, expected_mean, expected_scale = reference_standardize(X)
    np.testing.assert_allclose(model.x_scale_, expected_scale, rtol=1e-12)
    np.testing.assert_allclose(model.x_mean_, expected_mean, rtol=1e-12)
    assert model.x_scale_[0] == 1.0  # np.std gives 4e-17 here
    constant_y = GDRegressor(epochs=5).fit(X, np.full(50, 0.1))
    assert constant_y.y_scale_ == 1.0


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory):
    """``jgd fit --save`` on a CSV whose column ``c`` is the constant 21.1."""
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(2)
    rows = [f"21.1,{v:.6f},{3 * v + 1:.6f}" for v in rng.normal(size=200)]
    path = write(folder, "c,x,y\n" + "\n".join(rows) + "\n")
    model = folder / "model.npz"
    args = ["fit", "--csv", str(path), "--target", "y", "--epochs", "20", "--save", str(model)]
    assert jgd.cli.main([*args, "--json"]) == 0
    return model


def test_cli_fit_saves_scale_one_for_a_constant_column(cli_model):
    saved = jgd.load(cli_model).metadata
    assert saved["scale"][0] == 1.0
    assert saved["mean"][0] == pytest.approx(np.float32(21.1), rel=1e-7)


# ---------------------------------------------------------------- overflow


def test_standardize_huge_float32_values_matches_float64():
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(64, 3)) * [1e19, 1e30, 1e38]).astype(np.float32)
    train_s, stats = standardize(jgd.Dataset(jnp.asarray(X), jnp.zeros(64)))
    expected, mean, scale = reference_standardize(X)
    assert np.isfinite(np.asarray(train_s.X)).all()
    np.testing.assert_allclose(train_s.X, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.scale, scale, rtol=1e-12)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-12)


def test_standardized_values_beyond_the_dtype_are_refused():
    train = jgd.Dataset(jnp.full((4, 1), -3e38, jnp.float32), jnp.zeros(4))
    other = jgd.Dataset(jnp.full((2, 1), 3e38, jnp.float32), jnp.zeros(2))
    with pytest.raises(ValueError, match=r"others\[0\]\.X standardized at row 0.*float32"):
        standardize(train, other)
    _, stats = standardize(train)
    with pytest.raises(ValueError, match="beyond float32's range"):
        stats.transform(other.X)


def test_column_statistics_refuses_non_finite_input():
    with pytest.raises(ValueError, match=r"X: column 1 holds inf at row 0"):
        column_statistics(np.array([[1.0, np.inf], [2.0, 1.0]]))


# ---------------------------------------------------------------- pandas


def test_standardize_accepts_pandas():
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"a": rng.normal(5, 2, 30), "b": np.arange(30)})
    target = pd.Series(rng.normal(size=30))
    train_s, stats = standardize(jgd.Dataset(frame, target))
    expected, _, _ = reference_standardize(frame.to_numpy(float))
    np.testing.assert_allclose(train_s.X, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(train_s.y, target.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(stats.transform(frame), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="DataFrame as numeric data"):
        standardize(jgd.Dataset(pd.DataFrame({"a": ["x", "y"]}), target[:2]))


# ------------------------------------------------------------------- CSV


def test_duplicate_column_names_are_refused(tmp_path):
    path = write(tmp_path, "a,a,y\n1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match=r"duplicate column names \['a'\]"):
        load_csv(path, "y")
    with pytest.raises(ValueError, match="duplicate"):
        jgd.data.csv_columns(path)


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    path = write(tmp_path, "x1,y\n1,2\n3,4\n", encoding="utf-8-sig")
    assert jgd.data.csv_columns(path) == ["x1", "y"]
    np.testing.assert_array_equal(load_csv(path, "y", ["x1"]).X[:, 0], [1, 3])


def test_a_latin1_file_is_a_value_error_naming_file_and_encoding(tmp_path):
    path = write(tmp_path, "x,temp\u00e9rature\n1,2\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"data\.csv, line 1: byte 0xe9 .*not UTF-8"):
        load_csv(path, "x")


def test_trailing_commas_are_dropped_and_unnamed_columns_refused(tmp_path):
    path = write(tmp_path, "a,b,y,\n1,2,3,\n4,5,6,\n")
    assert jgd.data.csv_columns(path) == ["a", "b", "y"]
    data = load_csv(path, "y")
    np.testing.assert_array_equal(data.X, [[1, 2], [4, 5]])
    rows_only = write(tmp_path, "a,y\n1,3,\n4,6,\n", name="rows.csv")
    np.testing.assert_array_equal(load_csv(rows_only, "y").X[:, 0], [1, 4])
    with pytest.raises(ValueError, match=r"line 3: column 3 holds '9' but has no name"):
        load_csv(write(tmp_path, "a,y,\n1,3,\n4,6,9\n", name="u.csv"), "y")
    with pytest.raises(ValueError, match=r"columns \[2\] have no name"):
        load_csv(write(tmp_path, "a,,y\n1,2,3\n", name="mid.csv"), "y")


def test_values_outside_float32_are_refused_not_made_inf_or_zero(tmp_path):
    with pytest.raises(ValueError, match=r"line 3, column 'x': 1e\+39 is outside float32"):
        load_csv(write(tmp_path, "x,y\n1,2\n1e39,3\n"), "y")
    with pytest.raises(ValueError, match=r"line 2, column 'x': 1e-50 is outside float32"):
        load_csv(write(tmp_path, "x,y\n1e-50,2\n1,3\n", name="tiny.csv"), "y")


def test_predict_with_dropped_rows_prints_their_input_lines(cli_model, tmp_path, capsys):
    text = "c,x,y\n21.1,0.5,1\n21.1,,2\n\n22.1,1.5,3\n21.1,NA,4\n21.1,-1,5\n"
    holes = write(tmp_path, text, name="holes.csv")
    capsys.readouterr()
    args = ["predict", "--params", str(cli_model), "--csv", str(holes), "--missing", "drop"]
    assert jgd.cli.main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "line,prediction_y"
    # The blank line 4 is skipped; lines 3 and 6 have missing x.
    assert [int(row.split(",")[0]) for row in lines[1:]] == [2, 5, 7]
    saved = jgd.load(cli_model)
    stats = jgd.data.Standardization(
        np.asarray(saved.metadata["mean"]), np.asarray(saved.metadata["scale"])
    )
    kept = np.array([[21.1, 0.5], [22.1, 1.5], [21.1, -1.0]], np.float32)
    expected = jgd.models.linear(2).apply(saved.params, stats.transform(kept))
    got = [float(row.split(",")[1]) for row in lines[1:]]
    # 22.1 is one unit from the constant 21.1: a finite, ordinary prediction.
    assert np.all(np.abs(got) < 100)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------- saving and loading


def test_bfloat16_and_other_ml_dtypes_round_trip_exactly(tmp_path):
    path = tmp_path / "model.npz"
    params = {
        "w": jnp.asarray([1.5, -2.25, 3e38, 1e-30], jnp.bfloat16),
        "f8": np.asarray([0.5, -448.0], ml_dtypes.float8_e4m3fn),
        "i4": np.asarray([-8, 7], ml_dtypes.int4),
        "f16": jnp.asarray([65504.0], jnp.float16),
    }
    jgd.save(path, params, mean=jnp.ones(2, jnp.bfloat16))
    saved = jgd.load(path)
    for name, original in params.items():
        assert saved.params[name].dtype == original.dtype, name
        np.testing.assert_array_equal(
            np.asarray(saved.params[name]).view(np.uint8), np.asarray(original).view(np.uint8)
        )
    assert saved.metadata["mean"].dtype == jnp.bfloat16


def test_a_bfloat16_checkpoint_resumes(tmp_path):
    state = {"w": jnp.asarray([1.0, 2.5, -3.0], jnp.bfloat16), "step": jnp.int32(7)}
    print_ = {"config": {"epochs": 3}}
    save_state(tmp_path / "ck.npz", state, print_)
    restored = load_state(tmp_path / "ck.npz", state, print_)
    assert restored["w"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(restored["w"], state["w"])
    assert int(restored["step"]) == 7


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.array([2**40 + 7]), "int64 value 1099511627783, which does not fit int32"),
        (np.array([1e300]), "float64 value 1e\\+300, which would become infinite in float32"),
        (np.array([1e-300]), "float64 value 1e-300, which would become zero in float32"),
    ],
)
def test_values_jax_cannot_hold_are_refused_on_load(tmp_path, value, message):
    assert not jax.config.jax_enable_x64
    jgd.save(tmp_path / "m.npz", {"a": value}, extra=value)
    with pytest.raises(ValueError, match=f"params array 'p/0' holds the {message}"):
        jgd.load(tmp_path / "m.npz")
    save_state(tmp_path / "ck.npz", {"a": value}, {})
    with pytest.raises(ValueError, match=f"state array 's/0' holds the {message}"):
        load_state(
            tmp_path / "ck.npz", {"a": jnp.zeros(1, jax.dtypes.canonicalize_dtype(value.dtype))}, {}
        )


def _flip_each(raw, positions, load, good):
    """Flip one byte at each position: only ValueError, or exactly the original, may result."""
    refused = 0
    for position in positions:
        damaged = bytearray(raw)
        damaged[position] ^= 0xFF
        try:
            loaded = load(bytes(damaged))
        except ValueError:
            refused += 1
        else:
            assert jax.tree.structure(loaded) == jax.tree.structure(good), position
            for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(good)):
                assert a.dtype == b.dtype and np.array_equal(a, b), position
    return refused


def test_every_single_byte_corruption_of_a_save_is_a_value_error_or_a_correct_load(tmp_path):
    path = tmp_path / "model.npz"
    params = {"w": jnp.asarray([1.0, 2.0], jnp.bfloat16), "b": jnp.float32(0.5)}
    jgd.save(path, params, model="linear")
    raw = path.read_bytes()
    damaged_path = tmp_path / "damaged.npz"

    def load(data):
        damaged_path.write_bytes(data)
        saved = jgd.load(damaged_path)
        assert saved.metadata == {"model": "linear"}
        return saved.params

    refused = _flip_each(raw, range(len(raw)), load, jgd.load(path).params)
    assert refused > len(raw) // 2  # the rest hit timestamps, padding: loaded unchanged


def test_sampled_single_byte_corruptions_of_a_checkpoint(tmp_path):
    path = tmp_path / "ck.npz"
    state = {"w": jnp.arange(6.0), "opt": (jnp.int32(3), jnp.ones((2, 2)))}
    print_ = {"config": {"epochs": 10}, "loss_fn": {"function": "f"}}
    save_state(path, state, print_)
    raw = path.read_bytes()
    damaged_path = tmp_path / "damaged.npz"

    def load(data):
        damaged_path.write_bytes(data)
        return load_state(damaged_path, state, print_)

    positions = np.random.default_rng(0).choice(len(raw), size=min(400, len(raw)), replace=False)
    refused = _flip_each(raw, positions, load, state)
    assert refused > len(positions) // 2


def test_zip_compression_field_damage_and_missing_arrays_are_value_errors(tmp_path):
    path = tmp_path / "model.npz"
    jgd.save(path, {"w": jnp.ones(2)})
    raw = bytearray(path.read_bytes())
    central = raw.index(b"PK\x01\x02")  # the first central-directory entry: p/0.npy
    raw[central + 10] = 99  # its compression method: one zipfile cannot read
    damaged = tmp_path / "method.npz"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupted"):
        jgd.load(damaged)
    # A header naming an array the file lacks (written with a valid checksum).
    from jgd.serialization import FORMAT, write_npz

    header = {"format": FORMAT, "structure": {"array": 3}, "metadata": {}, "arrays": ["m"]}
    write_npz(tmp_path / "lacking.npz", {"p/0": np.ones(2)}, header)
    with pytest.raises(ValueError, match="names an array 'p/3' it lacks"):
        jgd.load(tmp_path / "lacking.npz")


# ------------------------------------------------------------ fingerprints


def test_a_changed_closed_over_array_of_40_values_is_not_resumed(tmp_path):
    data = regression_problem(n=32, d=3)
    model = jgd.models.linear(3)

    def make_loss(weights):
        def loss(params, batch):
            residual = model.apply(params, batch.X) - batch.y
            return jnp.mean(residual**2) + 1e-3 * jnp.sum(weights[:3] * params["w"])

        return loss

    weights = jnp.linspace(0.0, 1.0, 40)
    kwargs = dict(optimizer=jgd.gd(0.05), epochs=4, checkpoint=tmp_path / "ck.npz")
    jgd.fit(make_loss(weights), model.init(None), data, **kwargs)
    changed = weights.at[39].set(2.0)  # not even a value the loss reads: the hash sees it
    with pytest.raises(ValueError, match=r"loss function differs \(closure\[.*sha256"):
        jgd.fit(make_loss(changed), model.init(None), data, **kwargs, resume=True)
    small = jnp.arange(3.0)
    jgd.fit(make_loss(small), model.init(None), data, **{**kwargs, "checkpoint": tmp_path / "s"})
    with pytest.raises(
        ValueError, match=r"closure\[\d\]\.array\[0\]: 0\.0 in the checkpoint, 1\.0 now"
    ):
        jgd.fit(
            make_loss(small + 1),
            model.init(None),
            data,
            **{**kwargs, "checkpoint": tmp_path / "s"},
            resume=True,
        )


# ------------------------------------------------------- files and paths


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_files_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        jgd.save(tmp_path / "m.npz", {"w": jnp.ones(1)})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "m.npz").st_mode) == 0o666 & ~umask


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_temporaries_of_the_same_target_are_removed(tmp_path):
    hour_ago = time.time() - 3700
    stale = tmp_path / f".m.npz.{_dead_pid()}.{'a' * 16}.tmp"
    old_style = tmp_path / ".m.npz.k2j4_x9a.tmp"  # tempfile's name, from older jgd versions
    live = tmp_path / f".m.npz.{os.getpid()}.{'b' * 16}.tmp"  # a writer still running
    fresh_dead = tmp_path / f".m.npz.{_dead_pid()}.{'c' * 16}.tmp"  # just now: left alone
    other = tmp_path / f".n.npz.{_dead_pid()}.{'d' * 16}.tmp"  # another target's
    for path in (stale, old_style, live, fresh_dead, other):
        path.write_bytes(b"partial")
    for path in (stale, old_style, live, other):
        os.utime(path, (hour_ago, hour_ago))
    jgd.save(tmp_path / "m.npz", {"w": jnp.ones(1)})
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["m.npz", live.name, fresh_dead.name, other.name])


def test_check_writable_refuses_folders_files_as_parents_and_read_only_folders(
    tmp_path, monkeypatch
):
    with pytest.raises(ValueError, match=f"'{tmp_path}' is a folder"):
        check_writable(tmp_path, "--save path")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"'.*file' is a file, not a folder"):
        check_writable(tmp_path / "file" / "sub" / "m.npz")
    check_writable(tmp_path / "new" / "m.npz")  # atomic_write creates missing folders
    assert not (tmp_path / "new").exists()
    if os.geteuid() != 0:  # root may write anywhere: simulate a read-only mount below
        (tmp_path / "ro").mkdir(mode=0o500)
        with pytest.raises(ValueError, match="cannot be written"):
            check_writable(tmp_path / "ro" / "m.npz")
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(jgd._io.os, "open", read_only)
    with pytest.raises(ValueError, match=r"'.*m\.npz' cannot be written: the folder is read-only"):
        check_writable(tmp_path / "m.npz", "checkpoint")
    with pytest.raises(ValueError, match=r"save path .* cannot be written"):
        jgd.save(tmp_path / "m.npz", {"w": jnp.ones(1)})
    assert os.listdir(tmp_path) == ["file"]


def test_cli_fit_refuses_a_bad_save_path_before_training(tmp_path, monkeypatch, capsys):
    path = write(tmp_path, "x,y\n1,2\n2,4\n3,6\n4,8\n")
    trained = []
    monkeypatch.setattr(jgd, "fit", lambda *a, **k: trained.append(1))
    for target in (tmp_path, tmp_path / "data.csv" / "m.npz"):
        code = jgd.cli.main(["fit", "--csv", str(path), "--target", "y", "--save", str(target)])
        assert code == 1 and not trained
        assert "--save path" in capsys.readouterr().err


# ------------------------------------------------ properties (hypothesis)

F32 = np.finfo(np.float32)
NAMES = ["a", "b", "x1", " a", "temp\u00e9", "y"]  # " a" strips to "a"; "y" is the target
VALUES = st.one_of(
    st.floats(-1e3, 1e3, allow_nan=False, width=32),
    st.floats(-1e39, 1e39, allow_nan=False, allow_infinity=False),  # huge, some beyond float32
    st.sampled_from([1e-50, -3e-39, 1e-30, 0.0, 21.1, 3.4e38, -3.4e38]),  # tiny and edge values
)


@st.composite
def csv_files(draw):
    """A CSV text and what it holds: names, float64 values (NaN = missing), flags."""
    names = [*draw(st.lists(st.sampled_from(NAMES[:-1]), min_size=1, max_size=3, unique=True)), "y"]
    if draw(st.integers(0, 3)) == 0:  # sometimes a duplicate name
        names.insert(draw(st.integers(0, len(names))), draw(st.sampled_from(NAMES)))
    n = draw(st.integers(1, 6))
    columns = []
    for _ in names:
        if draw(st.booleans()):
            columns.append([draw(VALUES)] * n)  # a constant column
        else:
            columns.append(draw(st.lists(VALUES, min_size=n, max_size=n)))
    values = np.array(columns, dtype=np.float64).T.copy()
    holes = draw(st.lists(st.booleans(), min_size=values.size, max_size=values.size))
    values[np.reshape(np.array(holes) & draw(st.booleans()), values.shape)] = np.nan
    trailing = "," if draw(st.booleans()) else ""
    rows, blank = [",".join(names) + trailing], []
    for row in values:
        cells = [draw(st.sampled_from(["", "NA"])) if np.isnan(v) else repr(float(v)) for v in row]
        blank.append(not any(cells))  # a line of empty cells is a blank line: skipped
        rows.append(",".join(cells) + trailing)
    text = "\n".join(rows) + "\n"
    return text, [name.strip() for name in names], values[~np.array(blank)], draw(st.booleans())


def expected_csv_problem(names, values, missing):
    """The problem a loader must report (a regex), or None when the file is fine."""
    if len(values) == 0:
        return "header but no data rows"
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        return "duplicate column names"
    magnitude = np.abs(values[~np.isnan(values)])
    if ((magnitude > F32.max) | ((magnitude > 0) & (magnitude < F32.tiny))).any():
        return "outside float32's range"
    holes = np.isnan(values).any(axis=1)
    if holes.any() and missing == "error":
        return "missing value"
    if holes.all():
        return "every row has a missing value"
    return None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_files(), st.sampled_from(["error", "drop"]))
def test_property_load_csv_and_standardize_are_right_or_say_why(tmp_path_factory, case, missing):
    text, names, values, bom = case
    path = tmp_path_factory.mktemp("csv") / "data.csv"
    path.write_bytes(text.encode("utf-8-sig" if bom else "utf-8"))
    problem = expected_csv_problem(names, values, missing)
    event(f"refused: {problem}" if problem else "loaded")
    if problem is not None:
        with pytest.raises(ValueError, match=problem) as error:
            load_csv(path, "y", missing=missing)
        assert str(path) in str(error.value)
        return
    data = load_csv(path, "y", missing=missing)
    kept = values[~np.isnan(values).any(axis=1)]
    # Loading is float32 rounding of the file's numbers, nothing else.
    target = names.index("y")
    features = [i for i in range(len(names)) if i != target]
    np.testing.assert_array_equal(data.X, kept[:, features].astype(np.float32))
    np.testing.assert_array_equal(data.y, kept[:, target].astype(np.float32))
    train_s, stats = standardize(data)
    expected, _, scale = reference_standardize(np.asarray(data.X))
    assert np.isfinite(np.asarray(train_s.X)).all()
    np.testing.assert_allclose(train_s.X, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.scale, scale, rtol=1e-9)


@st.composite
def datasets(draw):
    """float32 features with huge, tiny and constant columns; a second dataset to transform."""
    n, d = draw(st.integers(1, 12)), draw(st.integers(1, 3))
    cell = st.floats(-float(F32.max), float(F32.max), width=32, allow_subnormal=False)
    columns = []
    for _ in range(d):
        magnitude = draw(st.sampled_from([1e-30, 1.0, 1e6, 1e19, 1e30, 1e37]))
        if draw(st.booleans()):
            columns.append(np.full(n + 3, draw(cell)))
        else:
            values = draw(st.lists(st.floats(-4, 4, width=32), min_size=n + 3, max_size=n + 3))
            columns.append(np.asarray(values) * magnitude + draw(cell) * draw(st.booleans()))
    X = np.clip(np.column_stack(columns), -F32.max, F32.max).astype(np.float32)
    return X[:n], X[n:]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_property_standardize_equals_float64_or_refuses(case):
    train_X, other_X = case
    train = jgd.Dataset(jnp.asarray(train_X), jnp.zeros(len(train_X)))
    other = jgd.Dataset(jnp.asarray(other_X), jnp.zeros(len(other_X)))
    expected_train, _, _ = reference_standardize(train_X)
    expected_other, _, _ = reference_standardize(train_X, other_X)
    refused = bool((np.abs(expected_other) > F32.max).any())
    event("refused" if refused else "standardized")
    if refused:
        with pytest.raises(ValueError, match=r"others\[0\]\.X standardized .* beyond float32"):
            standardize(train, other)
        return
    train_s, other_s, stats = standardize(train, other)
    for got, expected in ((train_s.X, expected_train), (other_s.X, expected_other)):
        got = np.asarray(got, np.float64)
        assert np.isfinite(got).all()
        # float32 rounding of a float64 result (and of values below float32's normal range).
        np.testing.assert_allclose(got, expected, rtol=2e-7, atol=1e-30)
    np.testing.assert_array_equal(stats.transform(other_X), other_s.X)


SAVE_DTYPES = [
    np.float16, ml_dtypes.bfloat16, np.float32, np.float64, ml_dtypes.float8_e4m3fn,
    np.int8, np.int32, np.int64, np.uint8, np.uint64, np.bool_,
]  # fmt: skip


@st.composite
def leaves(draw):
    dtype = np.dtype(draw(st.sampled_from(SAVE_DTYPES)))
    shape = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    size = int(np.prod(shape))
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        items = st.integers(int(info.min), int(info.max))
    elif dtype == np.bool_:
        items = st.booleans()
    else:
        items = st.one_of(st.floats(), st.sampled_from([1e300, -1e-300, 1e-40, 7e4]))
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return np.array(draw(st.lists(items, min_size=size, max_size=size)), dtype).reshape(shape)


pytrees = st.recursive(
    st.one_of(leaves(), st.none()),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(["w", "b", "layer 1", "\u00e9"]), children, max_size=3),
    ),
    max_leaves=6,
)


def expected_leaf(array):
    """What loading ``array`` must give with JAX's current dtypes, or the error to expect."""
    target = np.dtype(jax.dtypes.canonicalize_dtype(array.dtype))
    if target == array.dtype or array.size == 0:
        return array.astype(target), None
    if target.kind in "iu":
        fits = np.iinfo(target).min <= array.min() and array.max() <= np.iinfo(target).max
        return array.astype(target), None if fits else "does not fit"
    with np.errstate(over="ignore", under="ignore"):
        converted = array.astype(target)
    if (np.isfinite(array) & ~np.isfinite(converted)).any():
        return None, "would become infinite"
    if ((array != 0) & (converted == 0)).any():
        return None, "would become zero"
    return converted, None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pytrees)
def test_property_save_load_round_trips_or_refuses(tmp_path_factory, params):
    path = tmp_path_factory.mktemp("save") / "params.npz"
    jgd.save(path, params)
    expected = [expected_leaf(leaf) for leaf in jax.tree.leaves(params)]
    problems = [problem for _, problem in expected if problem]
    event("refused" if problems else "loaded")
    if problems:
        with pytest.raises(ValueError, match="|".join(problems)) as error:
            jgd.load(path)
        assert str(path) in str(error.value)
        return
    loaded = jgd.load(path).params
    assert jax.tree.structure(loaded) == jax.tree.structure(params)
    for got, (want, _) in zip(jax.tree.leaves(loaded), expected):
        got = np.asarray(got)
        assert got.dtype == want.dtype and got.shape == want.shape
        # Bit for bit (NaN payloads included) where no conversion was needed.
        np.testing.assert_array_equal(
            got.reshape(-1).view(np.uint8), want.reshape(-1).view(np.uint8)
        )
