"""Many devices and many processes, on JAX's own SPMD machinery.

``jgd.fit(..., mesh=...)`` and ``jgd.sweep(..., mesh=...)`` take a
``jax.sharding.Mesh``: the data rows are sharded over its ``"data"`` axis and
parameters replicated, and XLA (GSPMD) inserts the all-reduce that turns the
per-shard gradients into the global mean. Across processes (hosts), start each
with ``jgd.distributed.initialize`` and build the global dataset from each
process's own rows with ``global_dataset``.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jgd.data import Dataset, _default_float

__all__ = ["data_mesh", "global_dataset", "initialize"]


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: Any = None,
    cpu_collectives: str = "gloo",
    **kwargs: Any,
) -> None:
    """Join a multi-process JAX job (a thin wrapper over ``jax.distributed.initialize``).

    Call it first thing in every process, before any other JAX call. On CPU it
    selects the ``cpu_collectives`` implementation (gloo) so collectives can
    cross processes; on GPU/TPU the platform's own is used. Arguments left as
    None are detected by JAX from the cluster environment (SLURM, Kubernetes,
    Cloud TPU, ...).

    Args:
        coordinator_address: ``"host:port"`` of process 0.
        num_processes: how many processes take part.
        process_id: this process's index, 0-based.
        local_device_ids: restrict this process to some local devices.
        cpu_collectives: ``"gloo"`` (or ``"mpi"``) for CPU backends.
        **kwargs: passed on to ``jax.distributed.initialize``.
    """
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        local_device_ids=local_device_ids,
        **kwargs,
    )


def data_mesh(mesh: Mesh | str | None = "auto") -> Mesh:
    """``"auto"``: a 1-D mesh ``("data",)`` over every device of every process."""
    if isinstance(mesh, Mesh):
        return mesh
    if mesh != "auto":
        raise ValueError(f"mesh must be a jax.sharding.Mesh or 'auto', got {mesh!r}.")
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def global_dataset(local: Dataset, mesh: Mesh, axis: str = "data") -> Dataset:
    """One dataset over all processes, built from each process's own rows.

    Every process passes its part (the same number of rows in each, split
    evenly over its local devices); the result is a global ``Dataset`` whose
    rows are the processes' parts in process order, sharded over ``axis``.
    """
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    dtype = _default_float()
    return Dataset(
        *(
            jax.make_array_from_process_local_data(sharding, np.asarray(part, dtype))
            for part in local
        )
    )
