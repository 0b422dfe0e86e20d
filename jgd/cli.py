"""The ``jgd`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


def _demo(args: argparse.Namespace) -> int:
    from jgd import _demo

    return _demo.run(args.out)


def _compare(args: argparse.Namespace) -> int:
    from jgd import compare, problems

    failed = False
    for name in problems.names():
        report = compare.optax_parity(name, epochs=args.epochs, batch_size=args.batch_size)
        print(report.table())
        print()
        failed |= not report.passed
    print("FAILED: some jgd optimizer left its optax twin" if failed else "all pairs agree")
    return 1 if failed else 0


def _bench(args: argparse.Namespace) -> int:
    from jgd import bench

    return bench.command(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jgd", description="Gradient descent compiled with JAX.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="the whole story on the bundled Seattle weather data",
        description="Train linear regression by gradient descent on the bundled Seattle weather "
        "data and compare it with the exact least-squares answer.",
    )
    demo.add_argument("--out", default="jgd-demo", help="folder for plots (default ./jgd-demo)")
    demo.set_defaults(handler=_demo)

    compare = commands.add_parser(
        "compare",
        help="check jgd's optimizers against optax's, step by step",
        description="Run gd/momentum/nesterov and their optax twins on every built-in problem "
        "and print the largest parameter difference; exits 1 if any pair fails.",
    )
    compare.add_argument("--epochs", type=int, default=100, help="epochs per run (default 100)")
    compare.add_argument("--batch-size", type=int, default=None, help="mini-batch size")
    compare.set_defaults(handler=_compare)

    from jgd import bench

    bench_parser = commands.add_parser(
        "bench",
        help="time the standard workloads against optax, NumPy and PyTorch",
        description=bench.__doc__,
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
    except (ValueError, TypeError, OSError) as error:
        # User mistakes get one line, not a traceback.
        print(f"jgd {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
