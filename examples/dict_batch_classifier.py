"""A small classifier on a dict batch: 8x8 images with integer labels, dropout, an accuracy
trace and early stopping on validation accuracy.

The batch is ``{"image": (n, 8, 8), "label": (n,) int32}``: jgd gathers every leaf with the
same mini-batch rows. ``loss_takes_key=True`` gives the loss a fresh key every step (dropout);
when jgd evaluates the loss (validation) it passes ``key=None``, which switches dropout off.

Run: python examples/dict_batch_classifier.py
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jgd

try:  # scikit-learn's bundled 8x8 digits (no download) when installed
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images / 16.0, digits.target
except ImportError:  # else: three classes of noisy synthetic 8x8 patterns
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=900)
    images = rng.normal(size=(3, 8, 8))[labels] + 0.8 * rng.normal(size=(900, 8, 8))
classes = int(labels.max()) + 1
batch = {"image": jnp.asarray(images, jnp.float32), "label": jnp.asarray(labels, jnp.int32)}
rows = jax.random.permutation(jax.random.key(0), len(labels))
train = jax.tree.map(lambda a: a[rows[: len(rows) * 4 // 5]], batch)
val = jax.tree.map(lambda a: a[rows[len(rows) * 4 // 5 :]], batch)

model = jgd.models.mlp([64, 64, classes])  # (n, classes) logits


def logits(params, images, key=None):
    x = images.reshape(images.shape[0], -1)
    if key is not None:  # dropout on the inputs while training
        keep = jax.random.bernoulli(key, 0.8, x.shape)
        x = jnp.where(keep, x / 0.8, 0.0)
    return model.apply(params, x)


def loss_fn(params, batch, key):
    scores = logits(params, batch["image"], key)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(scores, batch["label"]))


def accuracy(params, batch):
    return jnp.mean(jnp.argmax(logits(params, batch["image"]), axis=-1) == batch["label"])


result = jgd.fit(
    loss_fn,
    model.init(jax.random.key(1)),
    train,
    optimizer=optax.adam(3e-3),
    epochs=20 if os.environ.get("JGD_EXAMPLE_QUICK") else 200,  # quick: the test suite
    batch_size=64,
    key=jax.random.key(2),
    loss_takes_key=True,
    val_data=val,
    metrics={"accuracy": accuracy},
    patience=10,
    monitor="val_accuracy",
    mode="max",
)
history = result.history
print(" epoch |   loss   | accuracy | val accuracy")
for i in range(0, len(history.epoch), max(1, len(history.epoch) // 10)):
    print(
        f"{int(history.epoch[i]):6d} | {float(history.loss[i]):.5f}  |  "
        f"{float(history.metrics['accuracy'][i]):.3f}   |  "
        f"{float(history.val_metrics['accuracy'][i]):.3f}"
    )
print(f"status: {result.status} after {result.epochs_run} epochs")
best = float(np.max(np.asarray(history.val_metrics["accuracy"])))
print(f"best validation accuracy: {best:.3f}")
print(f"validation accuracy of the returned params: {float(accuracy(result.params, val)):.3f}")
