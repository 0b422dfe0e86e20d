"""scikit-learn estimators backed by ``jgd.fit`` (needs scikit-learn).

``GDRegressor`` (linear or MLP, MSE) and ``GDClassifier`` (logistic regression
for two classes, softmax regression for more; linear or MLP) follow
scikit-learn's conventions: hyperparameters in ``__init__``, learned attributes
with a trailing underscore (``coef_``/``intercept_`` in the original feature
units for linear models), input validation by ``sklearn.utils.validation``,
``early_stopping``/``validation_fraction``/``n_iter_no_change`` and
``warm_start`` as in ``SGDClassifier``, and a ``ConvergenceWarning`` when the
epochs run out or training diverges. They work in ``Pipeline`` and
``GridSearchCV``.
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
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
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
from jgd.training import FitResult, Status, fit

__all__ = ["GDClassifier", "GDRegressor"]

_OPTIMIZERS = ("gd", "momentum", "nesterov", "adam", "lbfgs")
# jgd.fit's own RuntimeWarnings, re-issued here as one ConvergenceWarning.
_JGD_WARNINGS = ("training diverged", "the monitored validation value")


def _optimizer(name: str, learning_rate: float, beta: float) -> optax.GradientTransformation:
    if name == "gd":
        return gd(learning_rate)
    if name == "momentum":
        return momentum(learning_rate, beta)
    if name == "nesterov":
        return nesterov(learning_rate, beta)
    if name == "adam":
        return optax.adam(learning_rate)
    if name == "lbfgs":
        return optax.lbfgs()
    raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {name!r}.")


def _seed(random_state: Any) -> int:
    """An int seed from anything scikit-learn accepts (None, int, RandomState)."""
    return int(check_random_state(random_state).randint(2**31 - 1))


def _as_jax(array: np.ndarray) -> jax.Array:
    if np.issubdtype(array.dtype, np.integer):
        return jnp.asarray(array, jnp.int32)
    return jnp.asarray(array, jax.dtypes.canonicalize_dtype(np.float64))


class _GDBase(BaseEstimator):
    """Shared fitting logic; subclasses choose the model, loss and targets."""

    _stratify = False

    def _model(self, n_features: int) -> models.Model:
        raise NotImplementedError

    def _loss(self) -> Any:
        raise NotImplementedError

    def _split(self, Xs: np.ndarray, y: np.ndarray, seed: int) -> tuple[Dataset, Dataset | None]:
        """Training data and, with ``early_stopping``, the held-out validation data."""
        if not self.early_stopping:
            return Dataset(_as_jax(Xs), _as_jax(y)), None
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}."
            )
        X_train, X_val, y_train, y_val = train_test_split(
            Xs,
            y,
            test_size=self.validation_fraction,
            random_state=seed,
            stratify=y if self._stratify else None,
        )
        return Dataset(_as_jax(X_train), _as_jax(y_train)), Dataset(_as_jax(X_val), _as_jax(y_val))

    def _learning_rate(self, loss_fn: Any, params: Any, data: Dataset) -> float | None:
        if self.optimizer == "lbfgs":
            return None  # optax.lbfgs chooses its steps by line search
        learning_rate = self.learning_rate
        if isinstance(learning_rate, str):
            if learning_rate != "auto":
                raise ValueError(
                    f"learning_rate must be a number or 'auto', got {learning_rate!r}."
                )
            if self.optimizer == "adam":
                return 1e-2
            bound = lr_bound(loss_fn, params, data)
            learning_rate = 0.9 * bound if np.isfinite(bound) else 0.1
        check_learning_rate(learning_rate)
        return float(learning_rate)

    def _fit_arrays(self, X: np.ndarray, y: np.ndarray) -> FitResult:
        warm = self.warm_start and getattr(self, "result_", None) is not None
        if warm and len(self.x_mean_) != X.shape[1]:
            raise ValueError(
                f"warm_start needs the {len(self.x_mean_)} features of the previous fit, "
                f"X has {X.shape[1]}."
            )
        if not warm:
            # Standardize inside (the statistics are kept, and reused when warm
            # starting): GD needs well-scaled features. jgd's one rule (float64,
            # overflow-safe, constant up to round-off -> scale 1).
            self.x_mean_, self.x_scale_ = column_statistics(X, "X")
        seed = _seed(self.random_state)
        data, val_data = self._split((X - self.x_mean_) / self.x_scale_, y, seed)
        model = self._model(X.shape[1])
        loss_fn = losses.objective(model, self._loss(), l2=self.l2)
        params = model.init(jax.random.key(seed))
        if not warm:
            self.learning_rate_ = self._learning_rate(loss_fn, params, data)
        batch_size = self.batch_size
        if batch_size is not None:
            batch_size = min(int(batch_size), data.n_rows)
        with warnings.catch_warnings():
            for message in _JGD_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=RuntimeWarning)
            result = fit(
                loss_fn,
                None if warm else params,
                data,
                optimizer=_optimizer(self.optimizer, self.learning_rate_ or 1.0, self.beta),
                epochs=self.epochs,
                batch_size=batch_size,
                key=None if batch_size is None else jax.random.key(seed),
                val_data=val_data,
                tol=self.tol,
                patience=self.n_iter_no_change if self.early_stopping else None,
                warm_start=self.result_ if warm else None,
            )
        self._record(result, model)
        return result

    def _record(self, result: FitResult, model: models.Model) -> None:
        """Keep the result's attributes and warn (once) when it did not converge."""
        self.result_ = result
        self.params_ = result.params
        self.status_ = result.status.name.lower()
        self.n_iter_ = result.epochs_run
        self.history_ = {
            "epoch": np.asarray(result.history.epoch),
            "loss": np.asarray(result.history.loss),
        }
        if result.history.val_loss is not None:
            self.history_["val_loss"] = np.asarray(result.history.val_loss)
        self._apply = model.apply
        if result.status in (Status.DIVERGED, Status.VALIDATION_NONFINITE):
            warnings.warn(str(result.message), ConvergenceWarning, stacklevel=4)
        elif result.status is Status.MAX_EPOCHS and self.tol is not None:
            warnings.warn(
                f"{type(self).__name__} did not converge: the {self.epochs} epochs ran out "
                f"before the relative loss change fell below tol={self.tol:g}. Increase "
                "epochs, or try optimizer='lbfgs' or 'adam'.",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _decision(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "params_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        Xs = (X - self.x_mean_) / self.x_scale_
        dtype = jax.dtypes.canonicalize_dtype(np.float64)
        return np.asarray(self._apply(self.params_, jnp.asarray(Xs, dtype)), dtype=np.float64)

    def _raw_linear(self) -> tuple[np.ndarray, np.ndarray]:
        """Weights (d, k) and biases (k,) on the raw features of the linear model."""
        check_is_fitted(self, "params_")
        if self.model != "linear":
            raise AttributeError(
                f"{type(self).__name__} with model={self.model!r} has no coef_ or intercept_ "
                "(only model='linear' has)."
            )
        w = np.asarray(self.params_["w"], np.float64).reshape(len(self.x_mean_), -1)
        b = np.asarray(self.params_["b"], np.float64).reshape(-1)
        coef = w / self.x_scale_[:, None]
        return coef, b - self.x_mean_ @ coef


_COMMON_ARGS = """
        optimizer: ``"gd"``, ``"momentum"``, ``"nesterov"``, ``"adam"`` or
            ``"lbfgs"`` (``optax.lbfgs()`` with its line search: full batch,
            converges in tens of epochs; ``learning_rate`` is then unused).
        learning_rate: a positive number, or ``"auto"``: 0.9 × ``jgd.lr_bound``
            on the (standardized) training data for plain GD (0.01 for Adam).
        beta: momentum coefficient.
        epochs: most epochs per call to ``fit``; ``tol`` may stop earlier.
        batch_size: None for full batch, else mini-batch size.
        l2: ridge strength on the weights: the loss is the mean loss +
            ``l2 * ||w||²`` (scikit-learn's ``C`` is ``1 / (2 * n * l2)``).
        tol: relative loss change for convergence (``jgd.fit``'s ``tol``);
            when set and the epochs run out first, a ``ConvergenceWarning``.
        early_stopping: hold out ``validation_fraction`` of the rows and stop
            after ``n_iter_no_change`` epochs without a lower validation loss,
            keeping the best parameters (``status_ == "early_stopped"``).
        validation_fraction: the held-out fraction for ``early_stopping``.
        n_iter_no_change: the patience for ``early_stopping``.
        warm_start: a new ``fit`` continues from the previous one (parameters,
            optimizer state, standardization statistics) for ``epochs`` more.
        random_state: None, an int or a ``np.random.RandomState``: initialisation,
            shuffling and the validation split.
"""


class GDRegressor(RegressorMixin, _GDBase):
    """Regression by gradient descent (``jgd.fit``) with an MSE loss.

    Args:
        model: ``"linear"`` or ``"mlp"`` (tanh hidden layers ``hidden``).
        hidden: hidden layer widths for ``model="mlp"``.{args}
    Features and targets are standardized inside with the training
    statistics; ``coef_`` (d,) and ``intercept_`` (a float) are in the
    original units (``model="linear"`` only). ``result_`` is the ``FitResult``.

    Example:
        >>> import numpy as np
        >>> from jgd.estimators import GDRegressor
        >>> X = np.arange(20.0).reshape(-1, 1); y = 3 * X[:, 0] + 1
        >>> model = GDRegressor(epochs=500, tol=None).fit(X, y)
        >>> round(model.score(X, y), 4), model.coef_.round(3).tolist(), round(model.intercept_, 3)
        (1.0, [3.0], 1.0)
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
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 5,
        warm_start: bool = False,
        random_state: int | np.random.RandomState | None = None,
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
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.random_state = random_state

    def _model(self, n_features: int) -> models.Model:
        if self.model == "linear":
            return models.linear(n_features)
        if self.model == "mlp":
            return models.mlp([n_features, *self.hidden, 1], init="glorot")
        raise ValueError(f"model must be 'linear' or 'mlp', got {self.model!r}.")

    def _loss(self) -> Any:
        return losses.mse

    def fit(self, X: Any, y: Any) -> GDRegressor:
        """Fit to ``X`` (n, d) and ``y`` (n,); returns ``self``."""
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], y_numeric=True)
        if not (self.warm_start and getattr(self, "result_", None) is not None):
            # Targets are centred and scaled too, so one learning rate suits any units.
            y_mean, y_scale = column_statistics(np.reshape(y, (-1, 1)), "y")
            self.y_mean_, self.y_scale_ = float(y_mean[0]), float(y_scale[0])
        self._fit_arrays(X, (y - self.y_mean_) / self.y_scale_)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for ``X`` in the units of ``y``."""
        return self._decision(X) * self.y_scale_ + self.y_mean_

    @property
    def coef_(self) -> np.ndarray:
        """Weights on the raw features, shape (d,) (``model="linear"`` only)."""
        coef, _ = self._raw_linear()
        return coef[:, 0] * self.y_scale_

    @property
    def intercept_(self) -> float:
        """Intercept in the units of ``y`` (``model="linear"`` only)."""
        _, intercept = self._raw_linear()
        return float(intercept[0] * self.y_scale_ + self.y_mean_)


class GDClassifier(ClassifierMixin, _GDBase):
    """Logistic (two classes) or softmax (more) regression by gradient descent.

    Labels of any type are mapped to ``classes_`` (sorted). Two classes train
    a logistic model with binary cross-entropy; k ≥ 3 classes a softmax model
    (k logits) with ``jgd.losses.softmax_cross_entropy``.

    Args:
        model: ``"linear"`` (logistic/softmax regression) or ``"mlp"`` (tanh
            hidden layers ``hidden``, 1 or k logits).
        hidden: hidden layer widths for ``model="mlp"``.{args}
    ``early_stopping`` monitors the validation log-loss (smoother than
    accuracy, so ``n_iter_no_change`` epochs are a meaningful patience), on a
    stratified split. Features are standardized inside; ``coef_`` (1, d) or
    (k, d) and ``intercept_`` (1,) or (k,) are on the raw features, as in
    ``LogisticRegression`` (``model="linear"`` only).

    Example:
        >>> import numpy as np
        >>> from jgd.estimators import GDClassifier
        >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array(["no", "no", "yes", "yes"])
        >>> GDClassifier(epochs=300, tol=None).fit(X, y).predict([[0.2], [2.8]]).tolist()
        ['no', 'yes']
        >>> X = np.array([[0.0], [1.0], [5.0], [6.0], [10.0], [11.0]]); y = [2, 2, 5, 5, 7, 7]
        >>> clf = GDClassifier(optimizer="lbfgs", epochs=50, l2=0.01).fit(X, y)
        >>> clf.predict([[0.5], [5.5], [10.5]]).tolist(), clf.predict_proba(X).shape
        ([2, 5, 7], (6, 3))
    """

    _stratify = True

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
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 5,
        warm_start: bool = False,
        random_state: int | np.random.RandomState | None = None,
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
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.random_state = random_state

    def _model(self, n_features: int) -> models.Model:
        k = len(self.classes_)
        if self.model == "linear":
            return models.logistic(n_features) if k == 2 else models.softmax(n_features, k)
        if self.model == "mlp":
            return models.mlp([n_features, *self.hidden, 1 if k == 2 else k], init="glorot")
        raise ValueError(f"model must be 'linear' or 'mlp', got {self.model!r}.")

    def _loss(self) -> Any:
        if len(self.classes_) == 2:
            return losses.binary_cross_entropy
        return losses.softmax_cross_entropy

    def fit(self, X: Any, y: Any) -> GDClassifier:
        """Fit to ``X`` (n, d) and class labels ``y`` (n,); returns ``self``."""
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        classes, index = np.unique(y, return_inverse=True)
        if len(classes) == 1:
            raise ValueError(
                f"GDClassifier needs two classes to train; y has only one class: {classes[0]!r}."
            )
        warm = self.warm_start and getattr(self, "result_", None) is not None
        if warm and not np.array_equal(classes, self.classes_):
            raise ValueError(
                f"warm_start needs the classes of the previous fit {self.classes_.tolist()}, "
                f"got {classes.tolist()}."
            )
        self.classes_ = classes
        target = index.astype(np.float64) if len(classes) == 2 else index.astype(np.int32)
        self._fit_arrays(X, target)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits: (n,) for two classes (positive: ``classes_[1]``), else (n, k)."""
        return self._decision(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns in ``classes_`` order."""
        logits = self._decision(X)
        if logits.ndim == 1:
            positive = 1.0 / (1.0 + np.exp(-logits))
            return np.column_stack([1.0 - positive, positive])
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithm of ``predict_proba``."""
        return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The predicted class of each row."""
        logits = self._decision(X)
        if logits.ndim == 1:
            return self.classes_[(logits > 0).astype(int)]
        return self.classes_[np.argmax(logits, axis=1)]

    @property
    def coef_(self) -> np.ndarray:
        """Weights on the raw features, (1, d) or (k, d) (``model="linear"`` only)."""
        coef, _ = self._raw_linear()
        return coef.T

    @property
    def intercept_(self) -> np.ndarray:
        """Intercepts, (1,) or (k,) (``model="linear"`` only)."""
        _, intercept = self._raw_linear()
        return intercept


for _estimator in (GDRegressor, GDClassifier):
    if _estimator.__doc__:  # None under python -OO
        _estimator.__doc__ = _estimator.__doc__.format(args=_COMMON_ARGS)
