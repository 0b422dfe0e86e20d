"""Placing a run's arrays on devices: meshes, row sharding, member padding.

Data rows go on a mesh's data axis, everything else is replicated; a sweep's
member axis is padded to a multiple of the devices and sharded. ``on_one_device``
tells the engine whether jgd's native CPU kernels may run (XLA's partitioner
cannot split a custom call over devices).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec

__all__ = ["constrain", "on_one_device", "place_on_mesh", "put", "shard_members"]


def on_one_device(tree: Any) -> bool:
    """Whether no array is spread over several devices (a mesh, jgd.data.shard)."""
    if jax.device_count() == 1:
        return True
    return all(
        len(leaf.sharding.device_set) == 1
        for leaf in jax.tree.leaves(tree)
        if isinstance(leaf, jax.Array)
    )


def constrain(datasets: Any, data_sharding: Any) -> Any:
    """Shard data rows over the mesh inside the program (a no-op without one)."""
    if data_sharding is None:
        return datasets
    return jax.tree.map(lambda a: lax.with_sharding_constraint(a, data_sharding), datasets)


def on_mesh(array: Any, mesh: Any) -> bool:
    sharding = getattr(array, "sharding", None)
    return isinstance(sharding, NamedSharding) and sharding.mesh == mesh


def put(array: Any, sharding: Any) -> Any:
    """``jax.device_put`` that also works for meshes spanning other processes.

    There, every process holds the whole (host) value and contributes the
    pieces its own devices need.
    """
    if sharding.is_fully_addressable:
        return jax.device_put(array, sharding)
    if jax.dtypes.issubdtype(array.dtype, jax.dtypes.prng_key):
        data = put(jax.random.key_data(array), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(array))
    host = np.asarray(array)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def place_on_mesh(
    arrays: list[Any], datasets: Any, mesh: Any, data_axis: str | None = None
) -> tuple[list[Any], Any]:
    """Put data rows on the mesh's data axis and every other array replicated.

    Returns the placed arrays and the rows' ``NamedSharding`` (None for a
    members-only mesh). Rows that split evenly are placed sharded (each device
    holds its rows); otherwise they are placed replicated and sharded inside
    the program, where XLA pads the short last shard. Arrays already on this
    mesh (e.g. from ``jgd.data.shard`` or ``jgd.distributed.global_dataset``)
    are left as they are. Every leaf of a pytree batch is placed by its rows.
    """
    from jgd.distributed import data_mesh

    mesh = data_mesh(mesh)
    replicated = NamedSharding(mesh, PartitionSpec())
    if data_axis is None and "members" in mesh.axis_names:
        # A sweep's members-only mesh: the data stays whole on every device.
        return [a if on_mesh(a, mesh) else put(a, replicated) for a in arrays], None
    if data_axis is None:
        data_axis = "data" if "data" in mesh.axis_names else mesh.axis_names[0]
    rows = NamedSharding(mesh, PartitionSpec(data_axis))
    data_leaves = {id(leaf) for leaf in jax.tree.leaves(datasets)}

    def place(array: Any) -> Any:
        if on_mesh(array, mesh):
            return array
        if id(array) in data_leaves and array.shape[0] % mesh.shape[data_axis] == 0:
            return put(array, rows)
        return put(array, replicated)

    return [place(a) for a in arrays], rows


def shard_members(
    tree: Any, members: int, mesh: Any = None, axis: str | None = "members"
) -> tuple[Any, int]:
    """Pad the member axis to a multiple of the mesh axis size and shard it.

    Without a mesh, every visible device takes a share of the members.
    """
    if mesh is None:
        devices = jax.devices()
        if len(devices) == 1:
            return tree, members
        mesh = jax.make_mesh(
            (len(devices),),
            ("members",),
            devices=devices,
            axis_types=(jax.sharding.AxisType.Auto,),
        )
    if axis is None:
        return jax.tree.map(lambda a: put(a, NamedSharding(mesh, PartitionSpec())), tree), members
    count = mesh.shape[axis]
    padded = -(-members // count) * count

    def pad(a: jax.Array) -> jax.Array:
        extra = jnp.repeat(a[-1:], padded - members, axis=0)
        return jnp.concatenate([a, extra], axis=0)

    sharding = NamedSharding(mesh, PartitionSpec(axis))
    return jax.tree.map(lambda a: put(pad(a), sharding), tree), padded
