import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgd
from jgd._filtering import partition


def test_linear_params_and_apply():
    model = jgd.models.linear(3)
    params = model.init(None)
    assert set(params) == {"w", "b"} and params["w"].shape == (3,) and params["b"].shape == ()
    np.testing.assert_array_equal(params["w"], 0.0)
    params = {"w": jnp.array([1.0, 2.0, 3.0]), "b": jnp.array(0.5)}
    X = jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(model.apply(params, X), [4.5, 2.5])


def test_linear_normal_init_is_random_and_scaled():
    params = jgd.models.linear(400, init="normal").init(jax.random.key(0))
    assert abs(float(jnp.std(params["w"])) - 0.05) < 0.01


def test_models_built_twice_have_equal_static_structure():
    # fit's compile cache is keyed on this structure: equal models share one program.
    def static(model):
        return partition(model)[1]

    assert static(jgd.models.linear(3)) == static(jgd.models.linear(3))
    assert static(jgd.models.mlp([2, 8, 1])) == static(jgd.models.mlp([2, 8, 1]))
    assert static(jgd.models.linear(3)) != static(jgd.models.linear(4))


def test_logistic_returns_logits():
    model = jgd.models.logistic(2)
    params = {"w": jnp.array([1.0, -1.0]), "b": jnp.array(0.0)}
    logits = model.apply(params, jnp.array([[2.0, 0.0], [0.0, 3.0]]))
    np.testing.assert_allclose(logits, [2.0, -3.0])


def test_mlp_shapes_and_forward_pass_match_numpy():
    model = jgd.models.mlp([2, 5, 4, 1])
    params = model.init(jax.random.key(0))
    assert [layer["w"].shape for layer in params] == [(2, 5), (5, 4), (4, 1)]
    X = np.random.default_rng(0).normal(size=(7, 2)).astype(np.float32)
    hidden = X
    for layer in params[:-1]:
        hidden = np.tanh(hidden @ np.asarray(layer["w"]) + np.asarray(layer["b"]))
    expected = (hidden @ np.asarray(params[-1]["w"]) + np.asarray(params[-1]["b"]))[:, 0]
    np.testing.assert_allclose(model.apply(params, jnp.asarray(X)), expected, rtol=1e-5, atol=1e-6)


def test_mlp_init_depends_on_key():
    model = jgd.models.mlp([3, 4, 1])
    a, b = model.init(jax.random.key(0)), model.init(jax.random.key(1))
    assert not np.allclose(a[0]["w"], b[0]["w"])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: jgd.models.linear(0), ">= 1"),
        (lambda: jgd.models.linear(2, init="ones"), "init must be"),
        (lambda: jgd.models.mlp([3]), "input and an output"),
        (lambda: jgd.models.linear(3, n_outputs=0), "n_outputs must be >= 1"),
        (lambda: jgd.models.softmax(3, 1), "n_classes must be >= 2"),
        (lambda: jgd.models.mlp([3, 1]).init(None), "PRNG key"),
    ],
)
def test_model_errors(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()
