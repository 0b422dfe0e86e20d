"""Run jgd's benchmark suite: ``python benchmarks/run.py [--quick] [--only linear,sweep,mlp]``.

The same as ``jgd bench``; results go to ``benchmarks/results/bench.json`` by default.
"""

import sys

from jgd import bench

if __name__ == "__main__":
    arguments = sys.argv[1:]
    if not any(a == "--out" or a.startswith("--out=") for a in arguments):
        arguments += ["--out", "benchmarks/results/bench.json"]
    sys.exit(bench.main(arguments))
