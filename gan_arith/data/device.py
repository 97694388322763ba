"""Device-resident input pipeline: the whole uint8 dataset lives on the device(s), no TensorFlow.

The images are put on every device once (replicated); each epoch's permutation is drawn on
device and cached; a batch is a ``jnp.take`` of the permutation's slice inside jitted code, so
the host only dispatches a step index. ``epoch_permutation`` gives the same order on the host,
which the tf.data path uses so that both pipelines yield the same batches for the same seed.

With several JAX processes (a TPU pod slice) every process holds the whole dataset and the same
permutations, and each device gathers its own rows of every global batch: no host feeds another.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def _check_int(name: str, value: object, minimum: int, maximum: int = 2**31 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not minimum <= value <= maximum:
        raise ValueError(f"{name} must be an integer in [{minimum}, {maximum}], got {value!r}")
    return int(value)


def _permutation(seed: int, epoch, num_examples: int) -> jax.Array:
    return jax.random.permutation(jax.random.fold_in(jax.random.key(seed), epoch), num_examples)


def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
    """The order (int32 [num_examples]) in which epoch ``epoch`` visits the examples.

    Seeds and epochs are limited to [0, 2**31) so that the traced (int32) values used on device
    give the same keys as these host-side ones.
    """
    seed, epoch = _check_int("seed", seed, 0), _check_int("epoch", epoch, 0)
    num_examples = _check_int("num_examples", num_examples, 1)
    return np.asarray(_permutation(seed, epoch, num_examples), np.int32)


# Module-level jitted functions (shapes and static settings key the cache), so that every
# DeviceFaces over the same shapes shares one compilation; seed, epoch and step are traced.
@functools.partial(jax.jit, static_argnames=("num_examples", "sharding"))
def _device_permutation(seed, epoch, *, num_examples: int, sharding: NamedSharding | None) -> jax.Array:
    perm = _permutation(seed, epoch, num_examples)
    return perm if sharding is None else jax.lax.with_sharding_constraint(perm, sharding)


@functools.partial(jax.jit, static_argnames=("batch_size", "num_steps", "sharding"))
def _gather(
    arrays: dict, perm: jax.Array, start, *, batch_size: int, num_steps: int | None, sharding: NamedSharding | None
) -> dict:
    """Rows perm[start * B : (start + k) * B] of every array, shaped [k, B, ...] (or [B, ...] when
    num_steps is None) and constrained to ``sharding``."""
    k = 1 if num_steps is None else num_steps
    idx = jax.lax.dynamic_slice_in_dim(perm, start * batch_size, k * batch_size)
    if num_steps is not None:
        idx = idx.reshape(num_steps, batch_size)
    out = {}
    for name, array in arrays.items():
        if array is not None:
            # The indices are a permutation's, always in bounds: "clip" avoids fill masking.
            rows = jnp.take(array, idx, axis=0, mode="clip")
            out[name] = rows if sharding is None else jax.lax.with_sharding_constraint(rows, sharding)
    return out


class DeviceFaces:
    """Batches of a uint8 image array (plus optional int8 attributes) kept on device.

    Args:
      images: uint8 [N, S, S, 3] (a memory-mapped store array is fine: it is copied once).
      attributes: optional int8 [N, A] in {-1, +1}.
      batch_size: faces per batch; with a mesh, divisible by the size of its "data" axis.
      seed: the shuffling seed; epoch e visits ``epoch_permutation(seed, e, N)`` in order.
      mesh: optional mesh with a "data" axis: the arrays are replicated on all its devices and
        batches are sharded over "data". Without one, everything lives on the default device.

    Batches are {"image": uint8 [B, S, S, 3], "attributes": int8 [B, A]} (no "attributes" when
    none were given); an epoch has ``steps_per_epoch = N // batch_size`` batches (the remainder
    of the permutation is dropped).
    """

    def __init__(
        self,
        images: np.ndarray,
        attributes: np.ndarray | None = None,
        *,
        batch_size: int,
        seed: int,
        mesh: Mesh | None = None,
    ) -> None:
        if mesh is None and jax.process_count() > 1:
            raise ValueError(
                f"DeviceFaces needs a mesh over the devices of all {jax.process_count()} processes of this job"
            )
        if not hasattr(images, "dtype") or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"images must be a uint8 [N, S, S, 3] array, got {getattr(images, 'dtype', type(images).__name__)} "
                f"{getattr(images, 'shape', '')}"
            )
        num = images.shape[0]
        if attributes is not None:
            attributes = np.asarray(attributes)
            if attributes.dtype != np.int8 or attributes.ndim != 2 or attributes.shape[0] != num:
                raise ValueError(f"attributes must be int8 [{num}, A], got {attributes.dtype} {attributes.shape}")
        self.batch_size = _check_int("batch_size", batch_size, 1)
        if self.batch_size > num:
            raise ValueError(f"batch_size {self.batch_size} exceeds the number of images {num}")
        self.seed = _check_int("seed", seed, 0)
        self.num_examples = num
        self.steps_per_epoch = num // self.batch_size

        if mesh is None:
            replicated = jax.devices()[0]
            self._replicated = self._batch_spec = self._stack_spec = None
        else:
            if DATA_AXIS not in mesh.axis_names:
                raise ValueError(f"mesh must have a {DATA_AXIS!r} axis, got axes {mesh.axis_names}")
            shards = mesh.shape[DATA_AXIS]
            if self.batch_size % shards:
                raise ValueError(
                    f"batch_size {self.batch_size} is not divisible by the {shards} devices of the "
                    f"mesh's {DATA_AXIS!r} axis"
                )
            self._replicated = replicated = NamedSharding(mesh, P())
            self._batch_spec = NamedSharding(mesh, P(DATA_AXIS))
            self._stack_spec = NamedSharding(mesh, P(None, DATA_AXIS))
        arrays = {"image": np.asarray(images), "attributes": attributes}
        self._arrays = put_process_local(arrays, replicated)
        self._cached_epoch: int | None = None
        self._cached_perm: jax.Array | None = None

    def permutation(self, epoch: int) -> jax.Array:
        """The epoch's permutation as a device array (drawn on device, cached for the epoch)."""
        epoch = _check_int("epoch", epoch, 0)
        if epoch != self._cached_epoch:
            self._cached_perm = _device_permutation(
                self.seed, epoch, num_examples=self.num_examples, sharding=self._replicated
            )
            self._cached_epoch = epoch
        return self._cached_perm

    def _check_steps(self, start_step: int, num_steps: int) -> None:
        _check_int("start_step", start_step, 0)
        _check_int("num_steps", num_steps, 1)
        if start_step + num_steps > self.steps_per_epoch:
            raise ValueError(
                f"steps {start_step}..{start_step + num_steps - 1} exceed the epoch's "
                f"{self.steps_per_epoch} steps ({self.num_examples} images // batch {self.batch_size})"
            )

    def batch(self, epoch: int, step: int) -> dict[str, jax.Array]:
        """Batch ``step`` (0-based) of epoch ``epoch``."""
        self._check_steps(step, 1)
        return _gather(
            self._arrays, self.permutation(epoch), step,
            batch_size=self.batch_size, num_steps=None, sharding=self._batch_spec,
        )

    def epoch_batches(self, epoch: int, start_step: int = 0) -> Iterator[dict[str, jax.Array]]:
        """The batches of epoch ``epoch`` from ``start_step`` on (to resume mid-epoch)."""
        if start_step != self.steps_per_epoch:
            self._check_steps(start_step, 1)
        for step in range(start_step, self.steps_per_epoch):
            yield self.batch(epoch, step)

    def stacked_batches(self, epoch: int, start_step: int, num_steps: int) -> dict[str, jax.Array]:
        """Batches ``start_step .. start_step+num_steps-1`` stacked on a leading [num_steps] axis.

        Equal to stacking the ``batch()`` results; for a loop that fuses steps in a ``lax.scan``.
        Each distinct ``num_steps`` compiles once.
        """
        self._check_steps(start_step, num_steps)
        return _gather(
            self._arrays, self.permutation(epoch), start_step,
            batch_size=self.batch_size, num_steps=num_steps, sharding=self._stack_spec,
        )


def put_process_local(tree: Any, sharding: jax.sharding.Sharding | jax.Device) -> Any:
    """Global arrays from each process's part of them: its rows of the sharded axes, all of a replicated one.

    One process: `jax.device_put`. Several: `jax.make_array_from_process_local_data`, which, unlike
    `device_put`, takes a different value on each process (device_put insists that they are equal,
    and checks it by gathering them).
    """
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda local: jax.make_array_from_process_local_data(sharding, np.asarray(local)), tree)


def _host_available_bytes() -> int:
    """Memory the host can still give (MemAvailable on Linux, else free physical pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def fits_on_device(num_bytes: int, devices: Sequence[jax.Device] | None = None, *, fraction: float = 0.5) -> bool:
    """Whether ``num_bytes`` replicated on each of ``devices`` stays within ``fraction`` of free memory.

    Uses ``device.memory_stats()`` (bytes_limit - bytes_in_use) where the backend reports it;
    devices that do not (CPU) share host RAM, so their copies are summed against the host's
    available memory. The default fraction leaves half for the model, optimiser and activations.
    """
    num_bytes = _check_int("num_bytes", num_bytes, 0, 2**63 - 1)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    devices = list(jax.local_devices() if devices is None else devices)
    host_copies = 0
    for device in devices:
        try:
            stats = device.memory_stats()
        except (RuntimeError, NotImplementedError):  # some backends raise instead of returning None
            stats = None
        if stats and "bytes_limit" in stats:
            if num_bytes > fraction * (stats["bytes_limit"] - stats.get("bytes_in_use", 0)):
                return False
        else:
            host_copies += 1
    return host_copies * num_bytes <= fraction * _host_available_bytes()
