"""Small shared problems with known answers, and NumPy references."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax.numpy as jnp
import numpy as np

import jgd


def regression_problem(
    n: int = 64, d: int = 3, *, noise: float = 0.1, seed: int = 0
) -> jgd.Dataset:
    """Random well-conditioned least-squares problem in float32."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    y = X @ w + 0.5 + noise * rng.normal(size=n)
    return jgd.Dataset(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32))


def classification_problem(n: int = 80, d: int = 2, *, seed: int = 0) -> jgd.Dataset:
    """Two overlapping Gaussian blobs labelled 0/1."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    X = rng.normal(size=(n, d)) + 1.5 * labels[:, None]
    return jgd.Dataset(jnp.asarray(X, jnp.float32), jnp.asarray(labels, jnp.float32))


def numpy_gd(X: np.ndarray, y: np.ndarray, learning_rate: float, epochs: int):
    """The tutorial's batch gradient descent, written directly in NumPy (float32).

    Returns the final (w, b) and the loss at the start of every epoch.
    """
    X = np.asarray(X, np.float32)
    y = np.asarray(y, np.float32)
    n = X.shape[0]
    w = np.zeros(X.shape[1], np.float32)
    b = np.float32(0.0)
    lr = np.float32(learning_rate)
    losses = []
    for _ in range(epochs):
        pred = X @ w + b
        error = pred - y
        losses.append(float(np.mean(error**2)))
        dw = np.float32(2.0 / n) * (X.T @ error)
        db = np.float32(2.0 / n) * np.sum(error)
        w = w - lr * dw
        b = b - lr * db
    return w, b, np.asarray(losses)


def hessian_top_eigenvalue(X: np.ndarray) -> float:
    """Largest eigenvalue of the MSE Hessian 2/n [X 1]^T [X 1] (weights and bias)."""
    X1 = np.column_stack([np.asarray(X, np.float64), np.ones(len(X))])
    return float(np.linalg.eigvalsh(2.0 / len(X) * X1.T @ X1)[-1])


def numpy_minibatch_gd(X, y, learning_rate, orders, batch_size):
    """Mini-batch GD for linear MSE in NumPy; ``orders`` gives each epoch's row order.

    Returns (w, b, epoch_losses) where an epoch's loss is the size-weighted mean
    of its batch losses.
    """
    X = np.asarray(X, np.float32)
    y = np.asarray(y, np.float32)
    w = np.zeros(X.shape[1], np.float32)
    b = np.float32(0.0)
    lr = np.float32(learning_rate)
    losses = []
    for order in orders:
        total = 0.0
        for start in range(0, len(order), batch_size):
            rows = np.asarray(order[start : start + batch_size])
            error = X[rows] @ w + b - y[rows]
            total += float(np.mean(error**2)) * len(rows)
            m = np.float32(len(rows))
            w = w - lr * (np.float32(2.0) / m * (X[rows].T @ error))
            b = b - lr * (np.float32(2.0) / m * np.sum(error))
        losses.append(total / len(order))
    return w, b, np.asarray(losses)


def run_with_devices(code: str, devices: int = 8) -> dict:
    """Run ``code`` in a new process with ``devices`` forced CPU devices; its last line as JSON."""
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
    }
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def image_problem(n: int = 48, classes: int = 3, *, seed: int = 0) -> dict:
    """A dict batch: (n, 8, 8) float images, (n,) int32 labels and (n,) sample weights.

    The labels are a linear function of the pixels, so softmax regression can fit them.
    """
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(n, 8, 8)).astype(np.float32)
    labels = np.argmax(image.reshape(n, 64) @ rng.normal(size=(64, classes)), axis=1)
    weight = rng.uniform(0.5, 1.5, size=n).astype(np.float32)
    return {
        "image": jnp.asarray(image),
        "label": jnp.asarray(labels, jnp.int32),
        "weight": jnp.asarray(weight),
    }


def softmax_start(classes: int = 3) -> dict:
    return {"w": jnp.zeros((64, classes), jnp.float32), "b": jnp.zeros(classes, jnp.float32)}


def softmax_logits(params, image):
    return image.reshape(image.shape[0], -1) @ params["w"] + params["b"][None, :]


def weighted_softmax_loss(params, batch):
    """Sample-weighted softmax cross-entropy of a dict batch (integer labels)."""
    import optax

    logits = softmax_logits(params, batch["image"])
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
    return jnp.sum(losses * batch["weight"]) / jnp.sum(batch["weight"])


def fit_programs_compiled() -> int:
    """How many loop programs ``jgd.fit`` has compiled (plain and chunked runs share them)."""
    from jgd import training

    return training._fit_run._cache_size()
