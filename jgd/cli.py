"""The ``jgd`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


def _demo(args: argparse.Namespace) -> int:
    from jgd import _demo

    return _demo.run(args.out)


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
