"""The same jgd.fit across several processes, each holding its own part of the data.

Run without arguments to launch 2 local processes (4 CPU devices each) that train
together over loopback, and to check them against a single-process run:

    python examples/multiprocess_fit.py

On a cluster, start one process per host with its index instead:

    python examples/multiprocess_fit.py --coordinator HOST0:PORT --processes N --process-id I
"""

import argparse
import os
import socket
import subprocess
import sys

import numpy as np

EPOCHS, ROWS, FEATURES = 60, 4096, 8
if os.environ.get("JGD_EXAMPLE_QUICK"):  # the test suite: a shorter run, same checks
    EPOCHS, ROWS = 15, 1024


def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, FEATURES)).astype(np.float32)
    y = (X @ rng.normal(size=FEATURES) + 0.3 + 0.1 * rng.normal(size=ROWS)).astype(np.float32)
    return X, y


def worker(coordinator: str, processes: int, process_id: int) -> None:
    import jgd.distributed  # initialize before any other JAX call

    jgd.distributed.initialize(coordinator, processes, process_id, initialization_timeout=120)
    import jax

    import jgd

    X, y = problem()
    rows = np.array_split(np.arange(ROWS), processes)[process_id]  # this process's part only
    mesh = jgd.distributed.data_mesh("auto")  # every device of every process
    data = jgd.distributed.global_dataset(jgd.Dataset(X[rows], y[rows]), mesh)
    loss_fn = jgd.objective(jgd.models.linear(FEATURES), jgd.losses.mse)
    result = jgd.fit(
        loss_fn,
        loss_fn.model.init(None),
        data,
        optimizer=jgd.momentum(0.05),
        epochs=EPOCHS,
        batch_size=256,
        key=jax.random.key(0),
        mesh=mesh,
    )
    w = np.asarray(result.params["w"])
    print(
        f"process {process_id}/{processes}: {jax.device_count()} devices, "
        f"final loss {float(result.history.loss[-1]):.6f}, w[:3] = {np.round(w[:3], 5).tolist()}",
        flush=True,
    )
    if process_id == 0:
        np.save(os.environ.get("JGD_EXAMPLE_OUT", "multiprocess_w.npy"), w)


def launch(processes: int = 2, local_devices: int = 4) -> None:
    with socket.socket() as probe:  # a free port on loopback only
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={local_devices}",
        "JAX_PLATFORMS": "cpu",
    }
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--coordinator",
                f"127.0.0.1:{port}",
                "--processes",
                str(processes),
                "--process-id",
                str(i),
            ],
            env=env,
        )
        for i in range(processes)
    ]
    codes = [child.wait(timeout=300) for child in children]
    if any(codes):
        sys.exit(f"a worker failed: exit codes {codes}")

    import jax

    import jgd

    X, y = problem()
    loss_fn = jgd.objective(jgd.models.linear(FEATURES), jgd.losses.mse)
    alone = jgd.fit(
        loss_fn,
        loss_fn.model.init(None),
        jgd.Dataset(X, y),
        optimizer=jgd.momentum(0.05),
        epochs=EPOCHS,
        batch_size=256,
        key=jax.random.key(0),
    )
    together = np.load(os.environ.get("JGD_EXAMPLE_OUT", "multiprocess_w.npy"))
    gap = float(np.max(np.abs(together - np.asarray(alone.params["w"]))))
    first = np.round(np.asarray(alone.params["w"][:3]), 5).tolist()
    print(f"single process, 1 device: w[:3] = {first}")
    print(f"largest difference {processes} processes vs 1: {gap:.2e}")
    print("agree" if gap < 1e-4 else "DISAGREE")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--coordinator")
    parser.add_argument("--processes", type=int)
    parser.add_argument("--process-id", type=int)
    parser.add_argument("out", nargs="?", help="folder for the result file (used by the tests)")
    args = parser.parse_args()
    if args.out:
        os.environ["JGD_EXAMPLE_OUT"] = os.path.join(args.out, "multiprocess_w.npy")
    if args.coordinator is None:
        launch()
    else:
        worker(args.coordinator, args.processes, args.process_id)
