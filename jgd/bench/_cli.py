"""``jgd bench``'s arguments and command: the suite, or one built-in workload at your sizes."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgd import losses, models
from jgd._checks import positive_int_argument as _positive_int
from jgd.bench._suite import WORKLOADS, format_table, run, write
from jgd.bench._workload import time_workload
from jgd.compare import optimizer_by_name
from jgd.data import Dataset

__all__ = ["BUILTIN_WORKLOADS", "Builtin", "add_arguments", "builtin", "command", "main"]

BUILTIN_WORKLOADS = ("linear", "mlp", "softmax")


class Builtin(NamedTuple):
    """A built-in workload: its loss, start, data, and FLOPs of one step by a model."""

    loss_fn: Callable[[Any, Dataset], jax.Array]
    params: Any
    data: Dataset
    flops_per_step: float


def _softmax_loss(params: Any, batch: Dataset) -> jax.Array:
    logits = batch.X @ params["w"] + params["b"][None, :]
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()


def builtin(
    kind: str,
    rows: int,
    features: int,
    *,
    batch_size: int | None = None,
    classes: int = 10,
    hidden: Sequence[int] = (64, 64),
    seed: int = 0,
) -> Builtin:
    """Random data and a loss for ``jgd bench --workload``.

    ``linear``: linear MSE regression, ``4·B·D`` FLOPs a step (B rows a step).
    ``mlp``: a tanh MLP ``D-hidden-1`` with MSE, ``2·B·Σ`` forward, ``2·B·Σ``
    for the weight gradients and ``2·B·Σ'`` back through the layers (Σ: sum of
    fan-in × fan-out, Σ': without the first layer). ``softmax``: ``classes``-
    class softmax regression on integer labels, ``4·B·D·K``.

    Example:
        >>> w = builtin("softmax", 100, 4, classes=3)
        >>> w.data.y.dtype.name, w.params["w"].shape, w.flops_per_step
        ('int32', (4, 3), 4800.0)
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    step_rows = float(batch_size or rows)
    if kind == "linear":
        y = X @ rng.normal(size=features) + 0.1 * rng.normal(size=rows)
        model = models.linear(features)
        loss_fn, params = losses.objective(model, losses.mse), model.init(None)
        flops = 4 * step_rows * features
    elif kind == "mlp":
        y = np.sin(X[:, 0]) + 0.1 * X.sum(axis=1)
        sizes = [features, *hidden, 1]
        model = models.mlp(sizes)
        loss_fn, params = losses.objective(model, losses.mse), model.init(jax.random.key(seed))
        fan = [a * b for a, b in itertools.pairwise(sizes)]
        flops = 2 * step_rows * (2 * sum(fan) + sum(fan[1:]))
    elif kind == "softmax":
        y = np.argmax(X @ rng.normal(size=(features, classes)), axis=1).astype(np.int32)
        zeros = {"w": jnp.zeros((features, classes)), "b": jnp.zeros(classes)}
        loss_fn, params = _softmax_loss, zeros
        flops = 4 * step_rows * features * classes
    else:
        raise ValueError(f"unknown workload {kind!r}; choose from {list(BUILTIN_WORKLOADS)}.")
    y = y if kind == "softmax" else y.astype(np.float32)
    return Builtin(loss_fn, params, Dataset(jnp.asarray(X), jnp.asarray(y)), float(flops))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``jgd bench``'s options: the suite's (``--quick``, ``--only``) and ``--workload``'s."""
    suite = parser.add_argument_group("the standard suite (default)")
    suite.add_argument("--quick", action="store_true", help="small sizes: a minute or two")
    suite.add_argument(
        "--only", default=None, help=f"comma-separated workloads from {','.join(WORKLOADS)}"
    )
    one = parser.add_argument_group("one workload at your sizes (--workload)")
    one.add_argument("--workload", choices=BUILTIN_WORKLOADS, help="time this workload instead")
    one.add_argument("--rows", type=_positive_int, default=10_000, help="default 10,000")
    one.add_argument("--features", type=_positive_int, default=16, help="default 16")
    one.add_argument("--batch-size", type=_positive_int, default=None, help="default: full batch")
    one.add_argument("--epochs", type=_positive_int, default=100, help="default 100")
    one.add_argument("--classes", type=_positive_int, default=10, help="softmax classes (10)")
    one.add_argument("--hidden", default="64,64", help="MLP hidden widths (default 64,64)")
    one.add_argument(
        "--optimizer", default="gd", help="gd, momentum, nesterov or an optax name (adam, ...)"
    )
    one.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    one.add_argument("--seed", type=int, default=0, help="data, init and shuffling seed")
    parser.add_argument(
        "--repeats",
        type=_positive_int,
        default=5,
        help="timed calls per figure (default 5)",
    )
    parser.add_argument(
        "--out",
        "--json",
        dest="out",
        default=None,
        metavar="FILE.json",
        help="JSON output path (suite default: jgd-bench.json)",
    )


def _workload_command(args: argparse.Namespace) -> int:
    if args.quick or args.only:
        raise ValueError("--quick and --only choose parts of the suite; --workload times one.")
    hidden = [int(width) for width in args.hidden.split(",") if width.strip()]
    workload = builtin(
        args.workload,
        args.rows,
        args.features,
        batch_size=args.batch_size,
        classes=args.classes,
        hidden=hidden,
        seed=args.seed,
    )
    timing = time_workload(
        workload.loss_fn,
        workload.params,
        workload.data,
        optimizer_by_name(args.optimizer, args.lr),
        epochs=args.epochs,
        batch_size=args.batch_size,
        key=jax.random.key(args.seed) if args.batch_size else None,
        repeats=args.repeats,
        flops_per_step=workload.flops_per_step,
        name=f"{args.workload} ({args.optimizer}, lr {args.lr:g})",
    )
    print(timing.table())
    if args.out:
        write(timing.to_dict(), args.out)
        print(f"wrote {args.out}")
    return 0


def command(args: argparse.Namespace) -> int:
    """Run ``jgd bench`` with parsed arguments; returns the exit status."""
    if args.workload:
        return _workload_command(args)
    only = [name.strip() for name in args.only.split(",")] if args.only else None
    report = run(quick=args.quick, only=only, repeats=args.repeats)
    print(format_table(report))
    path = args.out or "jgd-bench.json"
    write(report, path)
    print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``jgd bench`` as a function: parse ``argv`` (without the command name) and run.

    Example:
        >>> main(["--workload", "linear", "--rows", "64", "--features", "2", "--epochs", "5",
        ...       "--repeats", "1"])
        linear (gd, lr 0.01): 64 rows × 2 features, full batch, 5 epochs (5 steps), median of 1
        ...
        0
    """
    parser = argparse.ArgumentParser(prog="jgd bench", description=__doc__)
    add_arguments(parser)
    return command(parser.parse_args(argv))
