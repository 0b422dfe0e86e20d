"""scikit-learn estimators backed by ``jgd.fit`` (needs scikit-learn).

``GDRegressor`` (linear or MLP, MSE) and ``GDClassifier`` (binary logistic
regression) follow scikit-learn's conventions: hyperparameters in ``__init__``,
learned attributes with a trailing underscore, input validation by
``sklearn.utils.validation``. They work in ``Pipeline`` and ``GridSearchCV``.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils.multiclass import type_of_target
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as error:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError(
        "jgd.estimators needs scikit-learn: pip install 'jgd[sklearn]' (or pip install "
        "scikit-learn)."
    ) from error

from jgd import losses, models
from jgd._checks import check_learning_rate
from jgd.curvature import lr_bound
from jgd.data import Dataset, column_statistics
from jgd.optimizers import gd, momentum, nesterov
from jgd.training import Status, fit

__all__ = ["GDClassifier", "GDRegressor"]

_OPTIMIZERS = ("gd", "momentum", "nesterov", "adam")


def _optimizer(name: str, learning_rate: float, beta: float) -> optax.GradientTransformation:
    if name == "gd":
        return gd(learning_rate)
    if name == "momentum":
        return momentum(learning_rate, beta)
    if name == "nesterov":
        return nesterov(learning_rate, beta)
    if name == "adam":
        return optax.adam(learning_rate)
    raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {name!r}.")


class _GDBase(BaseEstimator):
    """Shared fitting logic; subclasses choose the model, loss and targets."""

    def _model(self, n_features: int) -> models.Model:
        raise NotImplementedError

    def _loss(self):
        raise NotImplementedError

    def _fit_arrays(self, X: np.ndarray, y: np.ndarray) -> Any:
        dtype = jax.dtypes.canonicalize_dtype(np.float64)
        # Standardize inside (the statistics are kept): GD needs well-scaled
        # features, and users should not have to remember it.
        # jgd's one rule (float64, overflow-safe, constant up to round-off -> scale 1).
        self.x_mean_, self.x_scale_ = column_statistics(X, "X")
        Xs = (X - self.x_mean_) / self.x_scale_
        data = Dataset(jnp.asarray(Xs, dtype), jnp.asarray(y, dtype))
        model = self._model(X.shape[1])
        loss_fn = losses.objective(model, self._loss(), l2=self.l2)
        seed = 0 if self.random_state is None else int(self.random_state)
        params = model.init(jax.random.key(seed))
        learning_rate = self.learning_rate
        if isinstance(learning_rate, str):
            if learning_rate != "auto":
                raise ValueError(
                    f"learning_rate must be a number or 'auto', got {learning_rate!r}."
                )
            bound = lr_bound(loss_fn, params, data)
            learning_rate = 0.9 * bound if np.isfinite(bound) else 0.1
            if self.optimizer == "adam":
                learning_rate = 1e-2
        check_learning_rate(learning_rate)
        self.learning_rate_ = float(learning_rate)
        batch_size = self.batch_size
        if batch_size is not None:
            batch_size = min(int(batch_size), data.n_rows)
        result = fit(
            loss_fn,
            params,
            data,
            optimizer=_optimizer(self.optimizer, self.learning_rate_, self.beta),
            epochs=self.epochs,
            batch_size=batch_size,
            key=None if batch_size is None else jax.random.key(seed),
            tol=self.tol,
        )
        self.params_ = result.params
        self.status_ = result.status.name.lower()
        self.n_iter_ = result.epochs_run
        self.history_ = {
            "epoch": np.asarray(result.history.epoch),
            "loss": np.asarray(result.history.loss),
        }
        self._apply = model.apply
        if result.status is Status.DIVERGED:
            warnings.warn(
                f"training diverged at epoch {result.diverged_at} with learning_rate="
                f"{self.learning_rate_:g}; the last finite parameters are kept. Use a smaller "
                "learning_rate or learning_rate='auto'.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return result

    def _decision(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "params_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        Xs = (X - self.x_mean_) / self.x_scale_
        dtype = jax.dtypes.canonicalize_dtype(np.float64)
        return np.asarray(self._apply(self.params_, jnp.asarray(Xs, dtype)), dtype=np.float64)


class GDRegressor(RegressorMixin, _GDBase):
    """Regression by gradient descent (``jgd.fit``) with an MSE loss.

    Args:
        model: ``"linear"`` or ``"mlp"`` (tanh hidden layers ``hidden``).
        hidden: hidden layer widths for ``model="mlp"``.
        optimizer: ``"gd"``, ``"momentum"``, ``"nesterov"`` or ``"adam"``.
        learning_rate: a positive number, or ``"auto"``: 0.9 × ``jgd.lr_bound``
            on the (standardized) training data for plain GD (0.01 for Adam).
        beta: momentum coefficient.
        epochs: most epochs; ``tol`` may stop earlier.
        batch_size: None for full batch, else mini-batch size.
        l2: ridge strength on the weights.
        tol: relative loss change for convergence (``jgd.fit``'s ``tol``).
        random_state: seed for initialisation and shuffling.

    Features are standardized inside with the training statistics.

    Example:
        >>> import numpy as np
        >>> from jgd.estimators import GDRegressor
        >>> X = np.arange(20.0).reshape(-1, 1); y = 3 * X[:, 0] + 1
        >>> round(GDRegressor(epochs=500).fit(X, y).score(X, y), 4)
        1.0
    """

    def __init__(
        self,
        model: str = "linear",
        hidden: tuple[int, ...] = (32,),
        optimizer: str = "gd",
        learning_rate: float | str = "auto",
        beta: float = 0.9,
        epochs: int = 1000,
        batch_size: int | None = None,
        l2: float = 0.0,
        tol: float | None = 1e-6,
        random_state: int | None = None,
    ) -> None:
        self.model = model
        self.hidden = hidden
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.l2 = l2
        self.tol = tol
        self.random_state = random_state

    def _model(self, n_features: int) -> models.Model:
        if self.model == "linear":
            return models.linear(n_features)
        if self.model == "mlp":
            return models.mlp([n_features, *self.hidden, 1], init="glorot")
        raise ValueError(f"model must be 'linear' or 'mlp', got {self.model!r}.")

    def _loss(self):
        return losses.mse

    def fit(self, X: Any, y: Any) -> GDRegressor:
        """Fit to ``X`` (n, d) and ``y`` (n,); returns ``self``."""
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], y_numeric=True)
        # Targets are centred and scaled too, so one learning rate suits any units.
        y_mean, y_scale = column_statistics(np.reshape(y, (-1, 1)), "y")
        self.y_mean_, self.y_scale_ = float(y_mean[0]), float(y_scale[0])
        self._fit_arrays(X, (y - self.y_mean_) / self.y_scale_)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for ``X`` in the units of ``y``."""
        return self._decision(X) * self.y_scale_ + self.y_mean_


class GDClassifier(ClassifierMixin, _GDBase):
    """Binary logistic regression by gradient descent (``jgd.fit``, cross-entropy).

    Same hyperparameters as ``GDRegressor`` (the model is always logistic).

    Example:
        >>> import numpy as np
        >>> from jgd.estimators import GDClassifier
        >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array(["no", "no", "yes", "yes"])
        >>> GDClassifier(epochs=300).fit(X, y).predict([[0.2], [2.8]]).tolist()
        ['no', 'yes']
    """

    def __init__(
        self,
        optimizer: str = "gd",
        learning_rate: float | str = "auto",
        beta: float = 0.9,
        epochs: int = 1000,
        batch_size: int | None = None,
        l2: float = 0.0,
        tol: float | None = 1e-6,
        random_state: int | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.l2 = l2
        self.tol = tol
        self.random_state = random_state

    def _model(self, n_features: int) -> models.Model:
        return models.logistic(n_features)

    def _loss(self):
        return losses.binary_cross_entropy

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X: Any, y: Any) -> GDClassifier:
        """Fit to ``X`` (n, d) and binary labels ``y``; returns ``self``."""
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        classes = np.unique(y)
        if len(classes) == 1:
            raise ValueError(
                f"GDClassifier needs two classes to train; y has only one class: {classes[0]!r}."
            )
        if kind != "binary":
            raise ValueError(
                "Only binary classification is supported. GDClassifier is logistic regression; "
                f"y has target type {kind!r} with {len(classes)} classes."
            )
        self.classes_ = classes
        self._fit_arrays(X, (y == self.classes_[1]).astype(np.float64))
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits (positive: ``classes_[1]``)."""
        return self._decision(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities of ``classes_[0]`` and ``classes_[1]``, shape (n, 2)."""
        positive = 1.0 / (1.0 + np.exp(-self._decision(X)))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: Any) -> np.ndarray:
        """The predicted class of each row."""
        positive = self._decision(X) > 0
        return self.classes_[positive.astype(int)]
