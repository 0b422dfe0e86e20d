"""The ``jgd`` command line: ``demo``, ``fit``, ``sweep``, ``predict``, ``compare``, ``bench``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np

from jgd._checks import positive_int_argument as _positive_int

_MODELS = ("linear", "logistic", "softmax", "mlp")
_TASKS = ("regress", "classify")
_OPTIMIZERS = ("gd", "momentum", "nesterov", "adam")


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (exit 2), without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ------------------------------------------------------------------ helpers


def _csv_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"expected a comma-separated list, got {text!r}.")
    return items


def _numbers(text: str, name: str, kind: type = float) -> list[Any]:
    try:
        return [kind(item) for item in _csv_list(text) or []]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated numbers, got {text!r}.") from None


def _learning_rate(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive number or 'auto', got {text!r}"
        ) from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number or 'auto', got {text!r}")
    return value


def _fraction_or_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text!r}")
    return value


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", required=True, help="CSV file with a header line")
    parser.add_argument("--target", required=True, help="column to predict")
    parser.add_argument("--features", help="comma-separated feature columns (default: all others)")
    parser.add_argument(
        "--missing",
        choices=("error", "drop", "ffill"),
        default="error",
        help="empty/NA cells: error (default), drop the row, or forward-fill",
    )
    parser.add_argument(
        "--val-frac",
        type=_fraction,
        default=0.2,
        help="fraction of rows held out for validation (default 0.2)",
    )
    parser.add_argument(
        "--test-frac",
        type=_fraction_or_zero,
        default=0.2,
        help="fraction of rows held out for the final test metrics (default 0.2; 0: none)",
    )
    parser.add_argument(
        "--shuffle",
        action="store_true",
        help="shuffle rows (with --seed) before splitting; default keeps file order",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for init/shuffling (default 0)")


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=_MODELS, default="linear")
    parser.add_argument(
        "--task",
        choices=_TASKS,
        default=None,
        help="classify: the target holds class labels (text or numbers), mapped to 0..k-1 "
        "(default: classify for logistic/softmax, regress for linear/mlp)",
    )
    parser.add_argument("--hidden", default="64,64", help="MLP hidden widths (default 64,64)")
    parser.add_argument("--epochs", type=_positive_int, default=500)
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="mini-batch size (default: full batch)",
    )
    parser.add_argument("--l2", type=float, default=0.0, help="ridge strength on the weights")


def _task(args: argparse.Namespace) -> str:
    task = args.task or ("classify" if args.model in ("logistic", "softmax") else "regress")
    if task == "classify" and args.model == "linear":
        raise ValueError("--task classify needs --model logistic, softmax or mlp.")
    if task == "regress" and args.model in ("logistic", "softmax"):
        raise ValueError(f"--model {args.model} is a classifier; drop --task regress.")
    return task


def _split(args: argparse.Namespace, data: Any) -> tuple[Any, Any, Any, Any]:
    """Standardized train / validation / test parts (test None with --test-frac 0), statistics."""
    import jax

    import jgd

    if args.val_frac + args.test_frac >= 1:
        raise ValueError(
            f"--val-frac + --test-frac must leave training rows, got {args.val_frac} + "
            f"{args.test_frac}."
        )
    key = jax.random.key(args.seed) if args.shuffle else None
    fractions = [1 - args.val_frac - args.test_frac, args.val_frac]
    parts = jgd.data.split(
        data, (*fractions, args.test_frac) if args.test_frac else fractions, key=key
    )
    *parts, stats = jgd.data.standardize(*parts)
    return parts[0], parts[1], (parts[2] if len(parts) == 3 else None), stats


def _model_and_loss(args: argparse.Namespace, d: int, classes: list | None) -> tuple[Any, Any]:
    import jgd

    k = len(classes) if classes is not None else 0
    if classes is not None and k < 2:
        raise ValueError(f"column {args.target!r} has a single class {classes}; need two or more.")
    if args.model == "logistic":
        if k != 2:
            shown = ", ".join(map(str, classes[:5])) + (", ..." if k > 5 else "")
            raise ValueError(
                f"--model logistic needs 0/1 targets (two classes); column {args.target!r} has "
                f"{k} classes ({shown}); use --model softmax for more."
            )
        return jgd.models.logistic(d), jgd.losses.binary_cross_entropy
    if args.model == "softmax":
        return jgd.models.softmax(d, k), jgd.losses.softmax_cross_entropy
    if args.model == "mlp":
        hidden = _numbers(args.hidden, "--hidden", int)
        if classes is not None:
            return jgd.models.mlp([d, *hidden, k]), jgd.losses.softmax_cross_entropy
        return jgd.models.mlp([d, *hidden, 1]), jgd.losses.mse
    return jgd.models.linear(d), jgd.losses.mse


def _prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Load, split and standardize the CSV; build the model and objective."""
    import jax

    import jgd

    task = _task(args)
    features = _csv_list(args.features)
    if features is None:
        features = [c for c in jgd.data.csv_columns(args.csv) if c != args.target]
    classes = None
    if task == "classify":
        data, classes = jgd.data.load_labeled_csv(
            args.csv, args.target, features, missing=args.missing
        )
    else:
        data = jgd.data.load_csv(args.csv, args.target, features, missing=args.missing)
    if data.n_rows < 3:
        raise ValueError(f"{args.csv} has {data.n_rows} usable row(s); need at least 3.")
    train, val, test, stats = _split(args, data)
    model, loss = _model_and_loss(args, len(features), classes)
    if args.l2 < 0 or not np.isfinite(args.l2):
        raise ValueError(f"--l2 must be a finite number >= 0, got {args.l2}.")
    return {
        "task": task,
        "classes": classes,
        "features": features,
        "train": train,
        "val": val,
        "test": test,
        "stats": stats,
        "model": model,
        "loss_fn": jgd.objective(model, loss, l2=args.l2),
        "params": model.init(jax.random.key(args.seed)),
        "hidden": _numbers(args.hidden, "--hidden", int) if args.model == "mlp" else [],
    }


def _optimizer(name: str, learning_rate: float, beta: float) -> Any:
    import optax

    import jgd

    if name == "adam":
        return optax.adam(learning_rate)
    if name == "gd":
        return jgd.gd(learning_rate)
    return {"momentum": jgd.momentum, "nesterov": jgd.nesterov}[name](learning_rate, beta)


def _metrics(setup: dict[str, Any], params: Any) -> dict[str, float]:
    """Loss and accuracy / log-loss (classify) or RMSE / R² (regress) on each part."""
    import jax.numpy as jnp

    import jgd

    model = setup["model"]
    out = {}
    for name in ("train", "val", "test"):
        data = setup[name]
        if data is None:
            continue
        out[f"{name}_loss"] = float(setup["loss_fn"](params, data))
        if setup["task"] == "classify":
            out[f"{name}_accuracy"] = float(jgd.metrics.accuracy(model)(params, data))
            out[f"{name}_log_loss"] = float(jgd.metrics.log_loss(model)(params, data))
        else:
            prediction = model.apply(params, data.X)
            out[f"{name}_rmse"] = float(jnp.sqrt(jnp.mean((prediction - data.y) ** 2)))
            out[f"{name}_r2"] = float(jgd.metrics.r2(model)(params, data))
    return out


def _fit_metrics(setup: dict[str, Any]) -> dict[str, Any] | None:
    """What fit records per epoch besides the loss: accuracy when classifying."""
    import jgd

    return (
        {"accuracy": jgd.metrics.accuracy(setup["model"])} if setup["task"] == "classify" else None
    )


def _trace_rows(history: Any, limit: int = 12) -> tuple[list[str], list[tuple]]:
    """Header and rows: epoch | train loss | val loss (| val accuracy) at log-spaced epochs."""
    count = len(history.epoch)
    picks = sorted(
        {0, count - 1, *np.unique(np.geomspace(1, max(count, 1), limit).astype(int) - 1)}
    )
    nan = np.full(count, np.nan)
    columns = [
        np.asarray(history.loss),
        np.asarray(history.val_loss) if history.val_loss is not None else nan,
    ]
    header = ["epoch", "train loss", "val loss"]
    if history.val_metrics and "accuracy" in history.val_metrics:
        columns.append(np.asarray(history.val_metrics["accuracy"]))
        header.append("val accuracy")
    rows = [
        (int(history.epoch[i]), *(float(column[i]) for column in columns))
        for i in picks
        if 0 <= i < count
    ]
    return header, rows


def _plots_wanted(plot_dir: str | None) -> Any:
    if plot_dir is None:
        return None
    try:
        import jgd.plot
    except ImportError as error:
        raise ValueError(str(error)) from None
    os.makedirs(plot_dir, exist_ok=True)
    return jgd.plot


# ----------------------------------------------------------------- commands


def _demo(args: argparse.Namespace) -> int:
    from jgd import _demo

    return _demo.run(args.out)


def _fit(args: argparse.Namespace) -> int:
    import jgd

    if args.save:
        from jgd._io import check_writable

        # Refuse now: after training, a failed save would lose the model.
        check_writable(args.save, "--save path")
    setup = _prepare(args)
    learning_rate = args.lr
    bound = jgd.lr_bound(setup["loss_fn"], setup["params"], setup["train"])
    if learning_rate == "auto":
        learning_rate = 1e-2 if args.optimizer == "adam" else 0.9 * bound
    plot = _plots_wanted(args.plot_dir)
    with warnings.catch_warnings():
        # A divergence is reported once, as a line of its own and exit status 3 (below).
        warnings.filterwarnings("ignore", "training diverged", RuntimeWarning)
        result = _train(args, setup, learning_rate, plot)
    metrics = _metrics(setup, result.params)
    if args.save:
        _save_model(args.save, result.params, args, setup)
    plots = _fit_plots(plot, args.plot_dir, result, setup)
    summary = {
        "status": result.status.name,
        "epochs_run": result.epochs_run,
        "diverged_at": result.diverged_at,
        "learning_rate": float(learning_rate),
        "lr_bound": bound,
        "task": setup["task"],
        "classes": setup["classes"],
        **metrics,
        "params": {k: np.asarray(v).tolist() for k, v in _flat_params(result.params).items()},
        "saved": args.save,
        "plots": plots,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        _print_fit(args, setup, learning_rate, bound, result, metrics, plots)
    return _diverged(args, result)


def _save_model(path: str, params: Any, args: argparse.Namespace, setup: dict[str, Any]) -> None:
    """Save params with what 'jgd predict' needs: model, features, statistics, classes."""
    import jgd

    extra = {"classes": setup["classes"]} if setup["classes"] is not None else {}
    jgd.save(
        path,
        params,
        model=args.model,
        task=setup["task"],
        hidden=setup["hidden"],
        features=setup["features"],
        target=args.target,
        # JSON lists keep the float64 statistics exactly (arrays would load as float32).
        mean=setup["stats"].mean.tolist(),
        scale=setup["stats"].scale.tolist(),
        **extra,
    )


def _fit_plots(plot: Any, folder: str | None, result: Any, setup: dict[str, Any]) -> list | None:
    if plot is None:
        return None
    plots = [os.path.join(folder, "loss_curve.png")]
    plot.loss_curve(result, save=plots[0])
    if result.history.params is not None:
        plots.append(os.path.join(folder, "loss_vs_params.png"))
        plot.loss_vs_params(result, feature_names=setup["features"], save=plots[1])
    return plots


def _print_fit(
    args: argparse.Namespace,
    setup: dict[str, Any],
    learning_rate: float,
    bound: float,
    result: Any,
    metrics: dict[str, float],
    plots: list[str] | None,
) -> None:
    """The human-readable report of 'jgd fit'."""
    from jgd._text import ascii_chart, table

    test = setup["test"]
    classes = setup["classes"]
    print(
        f"{args.model} model ({setup['task']}), {len(setup['features'])} features "
        f"({', '.join(setup['features'])}) -> {args.target}"
        + (f" ({len(classes)} classes: {', '.join(map(str, classes))})" if classes else "")
        + f"; {setup['train'].n_rows} train / {setup['val'].n_rows} validation / "
        f"{test.n_rows if test is not None else 0} test rows"
    )
    print(
        f"{args.optimizer}, lr={learning_rate:.4g} (plain-GD bound 2/L = {bound:.4g}), "
        f"{'full batch' if not args.batch_size else f'batch {args.batch_size}'}\n"
    )
    print(table(*_trace_rows(result.history)))
    print()
    print(ascii_chart(np.asarray(result.history.loss)))
    print()
    print(table(["metric", "value"], [(k, v) for k, v in metrics.items()]))
    print(
        f"\nstatus: {result.status.name} after {result.epochs_run} epochs"
        + (f" (diverged at epoch {result.diverged_at})" if result.diverged_at else "")
    )
    if args.save:
        print(f"saved model to {args.save}")
    for path in plots or []:
        print(f"wrote {path}")


def _train(args: argparse.Namespace, setup: dict[str, Any], learning_rate: float, plot: Any):
    import jgd

    return jgd.fit(
        setup["loss_fn"],
        setup["params"],
        setup["train"],
        optimizer=_optimizer(args.optimizer, learning_rate, args.beta),
        epochs=args.epochs,
        batch_size=args.batch_size,
        key=_key(args.seed) if args.batch_size else None,
        val_data=setup["val"],
        tol=args.tol,
        patience=args.patience,
        metrics=_fit_metrics(setup),
        record_params=plot is not None and args.model != "mlp",
    )


#: Exit status of a run whose training diverged (1 is a user mistake, 2 a usage error).
EXIT_DIVERGED = 3


def _diverged(args: argparse.Namespace, result: Any) -> int:
    """One clear line on stderr and exit status 3 when training diverged, else 0."""
    if result.message is None or result.diverged_at is None:
        return 0
    print(f"jgd {args.command}: {result.message}", file=sys.stderr)
    return EXIT_DIVERGED


def _key(seed: int) -> Any:
    import jax

    return jax.random.key(seed)


def _flat_params(params: Any) -> dict[str, Any]:
    import jax

    return {
        jax.tree_util.keystr(path): leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
    }


def _sweep_factory(args: argparse.Namespace) -> Any:
    """The optimizer factory the grid's values are passed to."""
    import jgd

    if args.optimizer == "adam":
        if args.momentum is not None:
            raise ValueError("--momentum sweeps momentum or nesterov, not adam.")
        return _adam
    if args.optimizer == "gd" and args.momentum is not None:
        return jgd.momentum  # --momentum alone means heavy-ball momentum (as before)
    return {"gd": jgd.gd, "momentum": jgd.momentum, "nesterov": jgd.nesterov}[args.optimizer]


def _adam(learning_rate: Any) -> Any:
    import optax

    return optax.adam(learning_rate)


def _sweep(args: argparse.Namespace) -> int:
    import jgd

    if not (0 < args.lr_min < args.lr_max) or not np.isfinite(args.lr_max):
        raise ValueError(f"need 0 < --lr-min < --lr-max, got {args.lr_min} and {args.lr_max}.")
    if args.save_best:
        from jgd._io import check_writable

        check_writable(args.save_best, "--save-best path")
    setup = _prepare(args)
    grid = {"learning_rate": np.geomspace(args.lr_min, args.lr_max, args.num)}
    factory = _sweep_factory(args)
    if args.momentum is not None:
        grid["beta"] = np.asarray(_numbers(args.momentum, "--momentum"), float)
    if args.l2_grid is not None:
        grid["l2"] = np.asarray(_numbers(args.l2_grid, "--l2-grid"), float)
    plot = _plots_wanted(args.plot_dir)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "training diverged", RuntimeWarning)
        result = jgd.sweep(
            setup["loss_fn"],
            setup["params"],
            setup["train"],
            optimizer=factory,
            grid=grid,
            epochs=args.epochs,
            batch_size=args.batch_size,
            key=_key(args.seed) if args.batch_size else None,
            val_data=setup["val"],
            tol=args.tol,
            patience=args.patience,
        )
    all_diverged = bool((np.asarray(result.status) == jgd.Status.DIVERGED).all())
    best = None if all_diverged else result.best()
    if best is not None and args.save_best:
        _save_model(args.save_best, best.params, args, setup)
    plots = _sweep_plots(plot, args.plot_dir, result)
    if args.json:
        print(json.dumps(_sweep_summary(result, best, plots, args.save_best if best else None)))
    else:
        _print_sweep(args, result, best, plots)
    if best is None:
        sys.stdout.flush()
        print(
            f"jgd sweep: every one of the {result.n_members} members diverged: no best model"
            + (f", nothing saved to {args.save_best}" if args.save_best else "")
            + "; try smaller learning rates (--lr-max).",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    return 0


def _print_sweep(args: argparse.Namespace, result: Any, best: Any, plots: list | None) -> None:
    print(result.table(max_rows=args.show))
    if best is not None:
        config = ", ".join(f"{k}={v:.4g}" for k, v in best.config.items())
        print(f"\nbest (lowest validation loss): member {best.index}: {config}")
        if args.save_best:
            print(f"saved the best member's model to {args.save_best}")
    for path in plots or []:
        print(f"wrote {path}")


def _sweep_plots(plot: Any, folder: str | None, result: Any) -> list[str] | None:
    if plot is None:
        return None
    plots = [os.path.join(folder, "sweep_curve.png"), os.path.join(folder, "sweep_loss_curves.png")]
    plot.sweep_curve(result, save=plots[0])
    plot.loss_curve(result, save=plots[1])
    return plots


def _sweep_summary(result: Any, best: Any, plots: list | None, saved: str | None) -> dict:
    import jgd

    return {
        "members": result.n_members,
        "status_counts": result.status_counts(),
        "best": None
        if best is None
        else {
            "index": best.index,
            "config": best.config,
            "final_val_loss": float(result.final_val_loss[best.index]),
        },
        "lr_bound": result.lr_bound,
        "configs": {k: np.asarray(v).tolist() for k, v in result.configs.items()},
        "final_loss": np.asarray(result.final_loss).tolist(),
        "final_val_loss": np.asarray(result.final_val_loss).tolist(),
        "status": [jgd.Status(int(s)).name for s in np.asarray(result.status)],
        "saved": saved,
        "plots": plots,
    }


def _saved_model(meta: dict[str, Any]) -> Any:
    """The model a 'jgd fit --save' file describes (older files have no classes)."""
    import jgd

    d, classes = len(meta["features"]), meta.get("classes")
    if meta["model"] == "softmax":
        return jgd.models.softmax(d, len(classes))
    if meta["model"] == "mlp":
        classify = classes is not None and meta.get("task") == "classify"
        return jgd.models.mlp([d, *meta["hidden"], len(classes) if classify else 1])
    return jgd.models.linear(d)


def _prediction_rows(meta: dict[str, Any], output: np.ndarray) -> list[str]:
    """CSV lines: probability and class (names when the model kept them), or the values."""
    import jax

    classes = meta.get("classes")
    if meta["model"] == "logistic":
        names = classes if classes is not None else [0, 1]
        probability = np.asarray(jax.nn.sigmoid(output))
        return ["probability,class", *(f"{p:.6g},{names[int(p > 0.5)]}" for p in probability)]
    if output.ndim == 2 and classes is not None:
        probabilities = np.asarray(jax.nn.softmax(output, axis=-1))
        picked = probabilities.argmax(axis=-1)
        return [
            "class,probability",
            *(f"{classes[c]},{row[c]:.6g}" for c, row in zip(picked, probabilities)),
        ]
    return [f"prediction_{meta.get('target', 'y')}", *(f"{v:.6g}" for v in output)]


def _predict(args: argparse.Namespace) -> int:
    import jgd
    from jgd._io import atomic_write, check_writable

    if args.out:
        check_writable(args.out, "--out path")
    saved = jgd.load(args.params)
    meta = saved.metadata
    for field in ("model", "features", "mean", "scale"):
        if field not in meta:
            raise ValueError(f"{args.params} was not written by 'jgd fit --save' (no {field!r}).")
    features = meta["features"]
    X, lines = jgd.data.load_feature_rows(args.csv, features, missing=args.missing)
    stats = jgd.data.Standardization(
        np.asarray(meta["mean"], dtype=np.float64), np.asarray(meta["scale"], dtype=np.float64)
    )
    output = np.asarray(_saved_model(meta).apply(saved.params, stats.transform(X)))
    rows = _prediction_rows(meta, output)
    if args.missing == "drop":
        # Rows with missing cells were left out: say which input line each prediction is for.
        rows = [f"line,{rows[0]}", *(f"{line},{row}" for line, row in zip(lines, rows[1:]))]
    text = "\n".join(rows) + "\n"
    if args.out:
        atomic_write(args.out, lambda handle: handle.write(text.encode()))
        print(f"wrote {len(rows) - 1} predictions to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from jgd import compare, problems

    reports = []
    for name in args.problem or problems.names():
        problem = problems.get(name)
        learning_rate = problem.learning_rate if args.lr is None else args.lr
        if args.optimizer:
            pairs = compare.named_pairs(args.optimizer, learning_rate, args.beta)
        else:
            pairs = compare.default_pairs(learning_rate, args.beta)
        report = compare.optax_parity(
            problem, pairs, epochs=args.epochs, batch_size=args.batch_size, repeats=args.repeats
        )
        reports.append(report)
        if not args.json:
            print(report.table())
            print()
    failed = not all(report.passed for report in reports)
    if args.json:
        summary = {
            "passed": not failed,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "rows": [row.to_dict() for report in reports for row in report.rows],
        }
        print(json.dumps(summary))
    else:
        print("FAILED: some jgd run left its optax loop twin" if failed else "all pairs agree")
    return 1 if failed else 0


def _bench(args: argparse.Namespace) -> int:
    from jgd import bench

    return bench.command(args)


# ------------------------------------------------------------------ parser


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jgd", description="Gradient descent compiled with JAX.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = commands.add_parser(
        "demo",
        help="the whole story on the bundled Seattle weather data",
        description="Batch, stochastic and mini-batch gradient descent on the bundled Seattle "
        "weather data, checked against the exact least-squares answer, a learning-rate sweep "
        "with the divergence bound, and plots (with matplotlib).",
    )
    demo.add_argument("--out", default="jgd-demo", help="folder for plots (default ./jgd-demo)")
    demo.set_defaults(handler=_demo)

    fit = commands.add_parser(
        "fit",
        help="train a model on a CSV file",
        description="Train a linear, logistic, softmax or MLP model on a CSV file by gradient "
        "descent and print the epoch trace, train/validation/test metrics and the status. "
        "Classifiers (--model logistic|softmax, or --model mlp --task classify) read class "
        "labels (text or numbers) from the target column; --save keeps the class names for "
        "'jgd predict'. Exit status 3 when training diverged.",
    )
    _add_data_arguments(fit)
    _add_training_arguments(fit)
    fit.add_argument("--optimizer", choices=_OPTIMIZERS, default="gd")
    fit.add_argument(
        "--lr",
        type=_learning_rate,
        default="auto",
        help="learning rate, or 'auto' = 0.9 x the plain-GD bound 2/L (default)",
    )
    fit.add_argument("--beta", type=float, default=0.9, help="momentum (default 0.9)")
    fit.add_argument("--tol", type=float, default=None, help="stop when the loss changes by less")
    fit.add_argument(
        "--patience",
        type=_positive_int,
        default=None,
        help="early stopping on the validation loss",
    )
    fit.add_argument("--save", metavar="PARAMS.npz", help="save the model for 'jgd predict'")
    fit.add_argument("--plot-dir", metavar="DIR", help="write PNG plots there (needs matplotlib)")
    fit.add_argument("--json", action="store_true", help="print one JSON object instead")
    fit.set_defaults(handler=_fit)

    sweep = commands.add_parser(
        "sweep",
        help="train many learning rates at once",
        description="Sweep log-spaced learning rates (and momentum / l2 values) in one compiled "
        "program; print the ranked table, status counts, the best configuration and 2/L. "
        "--save-best writes the best member for 'jgd predict'; exit status 3 when every "
        "member diverged.",
    )
    _add_data_arguments(sweep)
    _add_training_arguments(sweep)
    sweep.add_argument("--optimizer", choices=_OPTIMIZERS, default="gd")
    sweep.add_argument(
        "--patience",
        type=_positive_int,
        default=None,
        help="early stopping on the validation loss, per member",
    )
    sweep.add_argument(
        "--save-best",
        metavar="PARAMS.npz",
        help="save the best member's model for 'jgd predict' (exit 3 if every member diverged)",
    )
    sweep.add_argument("--lr-min", type=float, required=True)
    sweep.add_argument("--lr-max", type=float, required=True)
    sweep.add_argument("--num", type=_positive_int, default=16, help="learning rates (default 16)")
    sweep.add_argument("--momentum", help="comma-separated momentum values, e.g. 0,0.9")
    sweep.add_argument("--l2-grid", help="comma-separated l2 values to sweep")
    sweep.add_argument("--tol", type=float, default=None)
    sweep.add_argument("--show", type=_positive_int, default=20, help="table rows (default 20)")
    sweep.add_argument("--plot-dir", metavar="DIR")
    sweep.add_argument("--json", action="store_true")
    sweep.set_defaults(handler=_sweep)

    predict = commands.add_parser(
        "predict",
        help="predict with a model saved by 'jgd fit --save'",
        description="Apply a saved model (and its stored standardization) to a CSV file.",
    )
    predict.add_argument("--params", required=True, metavar="PARAMS.npz")
    predict.add_argument("--csv", required=True)
    predict.add_argument(
        "--missing",
        choices=("error", "drop", "ffill"),
        default="error",
        help="empty/NA cells: error (default), drop the row (the output then starts with the "
        "input line number of each prediction), or forward-fill",
    )
    predict.add_argument("--out", help="write the predictions to this CSV file")
    predict.set_defaults(handler=_predict)

    compare = commands.add_parser(
        "compare",
        help="check jgd's training against optax's loop, step by step, and time both",
        description="Run jgd.fit and the optax Python loop from the same start on the same "
        "batches of every built-in problem: by default jgd's gd/momentum/nesterov against their "
        "optax twins, or the optimizers named with --optimizer. Prints the largest parameter "
        "difference over the trajectory and the median seconds of each run; exits 1 if any "
        "pair fails.",
    )
    compare.add_argument("--epochs", type=_positive_int, default=100)
    compare.add_argument("--batch-size", type=_positive_int, default=None)
    compare.add_argument(
        "--optimizer",
        action="append",
        metavar="NAME",
        help="gd, momentum, nesterov (against their optax twins) or any optax optimizer name "
        "(adam, sgd, rmsprop, ...: jgd.fit against the optax loop); repeatable",
    )
    compare.add_argument(
        "--lr", type=float, default=None, help="learning rate (default: each problem's own)"
    )
    compare.add_argument("--beta", type=float, default=0.9, help="momentum (default 0.9)")
    compare.add_argument(
        "--problem", action="append", metavar="NAME", help="only this problem; repeatable"
    )
    compare.add_argument(
        "--repeats", type=_positive_int, default=5, help="timed runs per figure (default 5)"
    )
    compare.add_argument("--json", action="store_true", help="print one JSON object instead")
    compare.set_defaults(handler=_compare)

    from jgd import bench

    bench_parser = commands.add_parser(
        "bench",
        help="time jgd against optax, NumPy and PyTorch: the standard suite or --workload",
        description=bench.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_arguments(bench_parser)
    bench_parser.set_defaults(handler=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jgd`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except BrokenPipeError:
        # The reader went away (| head): end quietly, and keep Python from
        # complaining when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, TypeError, OSError, ImportError) as error:
        # User mistakes get one line, not a traceback.
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"jgd {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
