import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgd
from jgd.data import load_csv, split, standardize


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_dataset_is_a_pytree():
    data = jgd.Dataset(jnp.ones((3, 2)), jnp.arange(3.0))
    doubled = jax.tree.map(lambda a: 2 * a, data)
    assert isinstance(doubled, jgd.Dataset)
    np.testing.assert_array_equal(doubled.y, [0.0, 2.0, 4.0])
    assert data.n_rows == 3 and data.n_features == 2


def test_load_csv_reads_columns_in_order(tmp_path):
    path = write(tmp_path, "a,b,t\n1,2,3\n4,5,6\n")
    data = load_csv(path, "t", ["b", "a"])
    np.testing.assert_array_equal(data.X, [[2, 1], [5, 4]])
    np.testing.assert_array_equal(data.y, [3, 6])
    assert data.X.dtype == jnp.float32


def test_load_csv_default_features_are_all_other_columns(tmp_path):
    data = load_csv(write(tmp_path, "a,t,b\n1,2,3\n"), "t")
    np.testing.assert_array_equal(data.X, [[1, 3]])


def test_load_csv_missing_modes(tmp_path):
    path = write(tmp_path, "a,t\n1,10\n,20\n3,\n4,40\n")
    with pytest.raises(ValueError, match=r"line 3, column 'a': missing value.*missing='drop'"):
        load_csv(path, "t")
    dropped = load_csv(path, "t", missing="drop")
    np.testing.assert_array_equal(dropped.X[:, 0], [1, 4])
    np.testing.assert_array_equal(dropped.y, [10, 40])
    filled = load_csv(path, "t", missing="ffill")
    np.testing.assert_array_equal(filled.X[:, 0], [1, 1, 3, 4])
    np.testing.assert_array_equal(filled.y, [10, 20, 20, 40])


def test_load_csv_ffill_cannot_fill_first_row(tmp_path):
    with pytest.raises(ValueError, match="first row"):
        load_csv(write(tmp_path, "a,t\n,1\n2,3\n"), "t", missing="ffill")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,t\n1,2\nx7,3\n", r"line 3, column 'a': cannot read 'x7' as a number"),
        ("", "is empty"),
        ("a,t\n", "header but no data rows"),
        ("a,b\n1,2\n", "target column 't' not found"),
        ("a,t\n1,inf\n", "infinite"),
        ("a,t\n1,2,3\n", "expected 2 cells"),
    ],
)
def test_load_csv_errors_name_the_problem(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load_csv(write(tmp_path, text), "t")


def test_load_csv_missing_file_and_bad_mode(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_csv(tmp_path / "nope.csv", "t")
    with pytest.raises(ValueError, match="missing must be one of"):
        load_csv(write(tmp_path, "a,t\n1,2\n"), "t", missing="zero")
    with pytest.raises(ValueError, match=r"column .z. not found"):
        load_csv(write(tmp_path, "a,t\n1,2\n"), "t", ["z"])


def test_split_keeps_order_without_key_and_loses_no_row():
    data = jgd.Dataset(jnp.arange(20.0)[:, None], jnp.arange(20.0))
    train, val, test = split(data)
    assert (train.n_rows, val.n_rows, test.n_rows) == (14, 3, 3)
    np.testing.assert_array_equal(jnp.concatenate([train.y, val.y, test.y]), data.y)


def test_split_with_key_shuffles_reproducibly():
    data = jgd.Dataset(jnp.arange(50.0)[:, None], jnp.arange(50.0))
    a = split(data, (0.5, 0.5), key=jax.random.key(1))
    b = split(data, (0.5, 0.5), key=jax.random.key(1))
    c = split(data, (0.5, 0.5), key=jax.random.key(2))
    np.testing.assert_array_equal(a[0].y, b[0].y)
    assert not np.array_equal(a[0].y, c[0].y)
    assert not np.array_equal(a[0].y, data.y[:25])
    np.testing.assert_array_equal(np.sort(jnp.concatenate([a[0].y, a[1].y])), data.y)
    np.testing.assert_array_equal(a[0].X[:, 0], a[0].y)  # rows stay paired


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ((0.5, 0.4), "sum to 1"),
        ((1.0,), "two or more"),
        ((1.2, -0.2), "positive"),
        ((0.99, 0.01), "too few"),
    ],
)
def test_split_rejects_bad_fractions(fractions, message):
    data = jgd.Dataset(jnp.ones((10, 1)), jnp.ones(10))
    with pytest.raises(ValueError, match=message):
        split(data, fractions)


def test_standardize_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    train = jgd.Dataset(jnp.asarray(rng.normal(3, 2, (100, 2)), jnp.float32), jnp.zeros(100))
    other = jgd.Dataset(jnp.asarray(rng.normal(0, 1, (10, 2)), jnp.float32), jnp.zeros(10))
    train_s, other_s, stats = standardize(train, other)
    np.testing.assert_allclose(train_s.X.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(train_s.X.std(axis=0), 1, atol=1e-5)
    expected = (np.asarray(other.X) - np.asarray(train.X).mean(0)) / np.asarray(train.X).std(0)
    np.testing.assert_allclose(other_s.X, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.transform(other.X), other_s.X)
    np.testing.assert_allclose(stats.inverse(other_s.X), other.X, atol=1e-5)


def test_standardize_constant_feature_gets_unit_scale():
    train = jgd.Dataset(jnp.array([[1.0, 5.0], [3.0, 5.0]]), jnp.zeros(2))
    train_s, stats = standardize(train)
    np.testing.assert_array_equal(stats.scale, [1.0, 1.0])
    np.testing.assert_array_equal(train_s.X[:, 1], [0.0, 0.0])


def test_standardize_rejects_feature_count_mismatch():
    with pytest.raises(ValueError, match="features"):
        standardize(
            jgd.Dataset(jnp.ones((2, 2)), jnp.ones(2)), jgd.Dataset(jnp.ones((2, 3)), jnp.ones(2))
        )


@pytest.mark.parametrize(
    ("X", "y", "error", "message"),
    [
        (np.ones(4), np.ones(4), ValueError, r"must be 2-D.*reshape\(-1, 1\)"),
        (np.ones((4, 1)), np.ones((4, 1)), ValueError, r"must be 1-D.*ravel"),
        (np.ones((4, 1)), np.ones(3), ValueError, "4 rows but .* has 3"),
        (np.ones((0, 1)), np.ones(0), ValueError, "0 rows"),
        (np.ones((4, 0)), np.ones(4), ValueError, "0 feature"),
        (np.array([[1.0], [np.nan]]), np.ones(2), ValueError, "X of data contains NaN at row 1"),
        (np.ones((2, 1)), np.array([1.0, np.inf]), ValueError, "y of data contains inf at row 1"),
        (np.array([["a"], ["b"]]), np.ones(2), TypeError, "numeric"),
    ],
)
def test_check_dataset_errors(X, y, error, message):
    with pytest.raises(error, match=message):
        jgd.data.check_dataset(jgd.Dataset(X, y))


def test_seattle_weather_is_tomorrows_max_from_today():
    data = jgd.datasets.seattle_weather()
    assert data.X.shape == (1460, 3) and data.y.shape == (1460,)
    raw = np.genfromtxt(
        jgd.datasets.seattle_weather_path(), delimiter=",", names=True, dtype=None, encoding="utf-8"
    )
    assert len(raw) == 1461
    np.testing.assert_allclose(data.X[:, 0], raw["temp_max"][:-1], rtol=1e-6)
    np.testing.assert_allclose(data.X[:, 1], raw["temp_min"][:-1], rtol=1e-6)
    np.testing.assert_allclose(data.X[:, 2], raw["precipitation"][:-1], rtol=1e-6)
    np.testing.assert_allclose(data.y, raw["temp_max"][1:], rtol=1e-6)


def test_finite_check_is_remembered_only_for_immutable_arrays():
    X = np.ones((5, 2), np.float32)
    y = np.ones(5, np.float32)
    jgd.data.check_dataset(jgd.Dataset(X, y))
    X[3, 1] = np.nan  # NumPy arrays can change in place: always checked again
    with pytest.raises(ValueError, match="NaN at row 3"):
        jgd.data.check_dataset(jgd.Dataset(X, y))
    good = jnp.ones((5, 2))
    jgd.data.check_dataset(jgd.Dataset(good, jnp.ones(5)))
    bad = good.at[2, 0].set(jnp.inf)  # a new (immutable) array: checked
    with pytest.raises(ValueError, match="inf at row 2"):
        jgd.data.check_dataset(jgd.Dataset(bad, jnp.ones(5)))


# ------------------------------------------------------------ permutation


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 17, 64, 100, 1000, 4097])
def test_permutation_is_a_permutation(n):
    order = np.asarray(jgd.data.permutation(jax.random.key(n), n))
    assert order.dtype == np.int32
    np.testing.assert_array_equal(np.sort(order), np.arange(n))


def test_permutation_is_reproducible_and_depends_on_the_key():
    first = np.asarray(jgd.data.permutation(jax.random.key(0), 1000))
    again = np.asarray(jax.jit(jgd.data.permutation, static_argnums=1)(jax.random.key(0), 1000))
    other = np.asarray(jgd.data.permutation(jax.random.key(1), 1000))
    np.testing.assert_array_equal(first, again)
    assert (first != other).mean() > 0.9
    assert (first != np.arange(1000)).mean() > 0.9


@pytest.mark.parametrize("n", [6, 300])  # the sorting path and the Feistel path
def test_permutation_is_uniform(n):
    # Where each of 6 rows lands (in 6 bins of positions) over 6,000 keys: flat.
    draws = 6000
    keys = jax.random.split(jax.random.key(42), draws)
    orders = np.asarray(jax.vmap(lambda k: jgd.data.permutation(k, n))(keys))
    positions = np.argsort(orders, axis=1)  # positions[k, row]: where row landed in draw k
    bins = positions[:, :6] * 6 // n
    counts = np.stack([np.bincount(bins[:, row], minlength=6) for row in range(6)])
    expected = draws / 6
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 70.0  # 30 degrees of freedom: the 99.99th percentile is 66.6
    # Row 0 precedes row 1 half the time; consecutive draws are unrelated.
    assert abs((positions[:, 0] < positions[:, 1]).mean() - 0.5) < 0.03
    assert abs(np.corrcoef(positions[:-1, 0], positions[1:, 0])[0, 1]) < 0.05


def test_permutation_scatters_neighbouring_rows():
    # A weak bijection keeps structure: with 1-2 Feistel rounds, rows next to each
    # other land within 5 places of each other 1.7-2.9x as often as chance, and
    # with 4 rounds row index and position still correlate (|rho| 0.033 vs 0.025).
    n, draws = 1000, 400
    keys = jax.random.split(jax.random.key(5), draws)
    orders = np.asarray(jax.vmap(lambda k: jgd.data.permutation(k, n))(keys))
    positions = np.argsort(orders, axis=1)
    near = (np.abs(positions[:, 1:] - positions[:, :-1]) <= 5).mean()
    assert 0.93 < near / (2 * 5 / (n - 1)) < 1.07
    rho = np.mean([abs(np.corrcoef(np.arange(n), p)[0, 1]) for p in positions])
    assert rho < 1.15 * np.sqrt(2 / np.pi) / np.sqrt(n - 1)  # E|rho| of a uniform shuffle


def test_permutation_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n must be"):
        jgd.data.permutation(jax.random.key(0), 0)


def test_encode_labels_round_trip_for_text_and_float_labels():
    text = ["sun", "rain", "fog", "sun", "drizzle"]
    codes, classes = jgd.data.encode_labels(text)
    assert classes == ["drizzle", "fog", "rain", "sun"]
    assert codes.dtype == np.int32 and codes.tolist() == [3, 2, 1, 3, 0]
    assert [classes[c] for c in codes] == text
    # Float labels (as a CSV gives them) sort numerically and come back as ints.
    codes, classes = jgd.data.encode_labels(np.array([2.0, 10.0, 0.0, 2.0]))
    assert classes == [0, 2, 10] and codes.tolist() == [1, 2, 0, 1]
    assert all(type(c) is int for c in classes)
    codes, classes = jgd.data.encode_labels(["0.5", "1.5", "0.5"])
    assert classes == [0.5, 1.5] and codes.tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="missing label"):
        jgd.data.encode_labels([1.0, float("nan")])


def test_load_labeled_csv_maps_the_weather_column_and_handles_missing(tmp_path):
    path = jgd.datasets.seattle_weather_path()
    data, classes = jgd.data.load_labeled_csv(path, "weather", ["precipitation", "temp_max"])
    assert classes == ["drizzle", "fog", "rain", "snow", "sun"]
    assert data.X.shape == (1461, 2) and data.y.shape == (1461,)
    names = [classes[int(c)] for c in np.asarray(data.y)[:3]]
    assert names == ["drizzle", "rain", "rain"]  # the file's first three days
    assert np.bincount(np.asarray(data.y).astype(int)).tolist() == [54, 411, 259, 23, 714]
    # Numeric targets keep load_csv's behaviour.
    numeric = jgd.data.load_csv(path, "temp_max", ["temp_min"])
    assert float(numeric.y[0]) == pytest.approx(12.8)
    csv = tmp_path / "labels.csv"
    csv.write_text("x,label\n1,cat\n2,\n3,dog\n4,cat\n")
    with pytest.raises(ValueError, match="line 3"):
        jgd.data.load_labeled_csv(csv, "label")
    dropped, classes = jgd.data.load_labeled_csv(csv, "label", missing="drop")
    assert classes == ["cat", "dog"]
    assert np.asarray(dropped.X)[:, 0].tolist() == [1, 3, 4]
    assert np.asarray(dropped.y).tolist() == [0, 1, 0]
