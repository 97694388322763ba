"""Data parallelism over a `jax.sharding.Mesh`: one device, all local devices, or a multi-host TPU slice.

The batch is sharded over the mesh's "data" axis and the train state replicated; XLA inserts the
gradient all-reduce. The same jitted function serves every case, so a test on 4 forced CPU devices
exercises the code path a TPU pod runs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gan_arith.data.device import put_process_local
from gan_arith.errors import InputError
from gan_arith.train.state import Batch, Metrics, TrainState
from gan_arith.train.steps import fuse_steps

DATA_AXIS = "data"
T = TypeVar("T")

# XLA's own fusion of each convolution with the elementwise operations after it (the bias add and,
# with layers.leaky_relu, the DCGAN's activation) into one cuDNN graph. With jax >= 0.11 on CUDA it
# speeds up the (model, dtype) rows in CONV_FUSION_FASTER; the VAE in float32 was not measured, and
# with jax 0.10's XLA each fused broadcast (biases, the slope) became a full-size operand. So 'auto'
# turns it on only where it was measured faster (docs/benchmarks.md, "conv fusion").
XLA_CONV_FUSION = "xla_gpu_experimental_enable_conv_fusion"
CONV_FUSION_MIN_JAX = (0, 11)
CONV_FUSION_FASTER = (("dcgan", "bfloat16"), ("dcgan", "float32"), ("vae", "bfloat16"))  # (model kind, compute dtype)


def _is_cuda(device: jax.Device) -> bool:
    return device.platform == "gpu" and "rocm" not in device.client.platform_version.lower()  # as jax tells them apart


def conv_fusion_enabled(choice: str, kind: str, dtype: str, device: jax.Device | None = None,
                        jax_version: str = jax.__version__) -> bool:
    """Whether a train step of model `kind` in compute `dtype` compiles with XLA's cuDNN convolution
    fusion (`XLA_CONV_FUSION`): `choice` 'on', 'off', or 'auto' (on for `CONV_FUSION_FASTER` on a
    CUDA `device` with jax >= 0.11; default device: the first of `jax.devices()`); `check_train_config`
    refuses other choices."""
    if choice != "auto":
        return choice == "on"
    version = tuple(int(part) for part in jax_version.split(".")[:2])
    return ((kind, dtype) in CONV_FUSION_FASTER and version >= CONV_FUSION_MIN_JAX
            and _is_cuda(device if device is not None else jax.devices()[0]))


def step_compiler_options(config: Any) -> dict[str, Any]:
    """XLA options for compiling `config`'s train and eval steps (`conv_fusion_enabled`).

    The option is experimental in XLA and may be renamed or dropped by a later jaxlib: a tiny
    function is compiled with it first, and without it 'auto' compiles the steps plainly (saying so)
    while 'on' is refused."""
    if not conv_fusion_enabled(config.conv_fusion, config.model.kind, config.model.dtype):
        return {}
    options = {XLA_CONV_FUSION: True}
    try:
        jax.jit(lambda x: x + 1, compiler_options=options).lower(np.float32(0)).compile()
    except jax.errors.JaxRuntimeError as error:
        if config.conv_fusion == "on":
            raise InputError(
                f"config.conv_fusion='on', but this jaxlib's XLA does not take {XLA_CONV_FUSION}: {error}"
            ) from None
        print(f"note: this jaxlib's XLA does not take {XLA_CONV_FUSION}; steps compile without conv fusion", file=sys.stderr)
        return {}
    return options


def initialize_distributed() -> None:
    """Join a multi-host run when launched as one (TPU VM pod slice, or coordinator env vars set).

    On a TPU VM slice `jax.distributed.initialize()` finds its peers by itself; elsewhere it reads
    JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID. A single host does nothing.
    """
    multi_host_env = "JAX_COORDINATOR_ADDRESS" in os.environ or os.environ.get("GAN_ARITH_DISTRIBUTED") == "1"
    tpu_pod = os.environ.get("TPU_WORKER_HOSTNAMES", "").count(",") > 0
    if (multi_host_env or tpu_pod) and not jax.distributed.is_initialized():
        # jax reads the coordinator's address from the environment but not the other two.
        counts = {name: os.environ.get(f"JAX_{name.upper()}") for name in ("num_processes", "process_id")}
        jax.distributed.initialize(**{name: int(value) for name, value in counts.items() if value is not None})


def first_process_first(make: Callable[[], T], name: str) -> T:
    """`make()` on process 0, then, once it is done, on the others (`name` labels the barrier).

    For artifacts written to disk on first use (the face store): on a shared filesystem the other
    processes then find process 0's; on per-host disks each host makes its own. Concurrent writers of
    one artifact would race. Not for orbax saves: orbax numbers saves per process, so one process
    saving alone would put the job's later joint checkpoints out of step. One process: just `make()`.
    """
    if jax.process_count() == 1:
        return make()
    if jax.process_index() == 0:
        made = make()
    multihost_utils.sync_global_devices(name)
    if jax.process_index() != 0:
        made = make()
    return made


def check_shared_directory(directory: Path) -> None:
    """Raise an InputError on every process unless all processes see `directory` as one folder (a no-op
    for one process).

    The processes of a multi-process run write one orbax checkpoint together and each restores it,
    so the workdir must be on a filesystem they share (NFS, Filestore, a gcsfuse mount).
    """
    if jax.process_count() == 1:
        return
    marker = directory / ".shared-directory-check"
    token = time.time_ns() % 2**31  # int32: what the broadcast carries without x64
    if jax.process_index() == 0:
        marker.write_text(str(token))
    token = int(multihost_utils.broadcast_one_to_all(np.int32(token)))  # process 0's, after it wrote
    sees = marker.exists() and marker.read_text() == str(token)
    missing = np.flatnonzero(~multihost_utils.process_allgather(np.array(sees)))
    if jax.process_index() == 0:
        marker.unlink()  # after the gather: every process has looked
    if len(missing):
        raise InputError(
            f"workdir {directory} is not one folder shared by all {jax.process_count()} processes (processes "
            f"{missing.tolist()} do not see process 0's files there): put it on a filesystem every host mounts"
        )


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D data-parallel mesh over `devices` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.array(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, leading_axes: int = 0) -> NamedSharding:
    """Shard axis `leading_axes` over the data axis (0 for one batch, 1 for a [steps, batch, ...] stack)."""
    return NamedSharding(mesh, PartitionSpec(*([None] * leading_axes), DATA_AXIS))


def check_batch_size(batch_size: int, data_batch_size: int, mesh: Mesh) -> None:
    """Raise an InputError unless every device gets whole rows of the `data_batch_size` faces a step reads
    (the DCGAN's real half of `batch_size`), naming the batch size the user sets."""
    if data_batch_size % mesh.size:
        per = batch_size // data_batch_size
        split = f" (its {data_batch_size} real faces per step are what the devices share)" if per > 1 else ""
        raise InputError(
            f"batch size {batch_size}{split} does not divide over {mesh.size} devices: use a multiple of "
            f"{per * mesh.size}"
        )


def compile_train_steps(
    train_step: Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]], mesh: Mesh,
    compiler_options: dict[str, Any] | None = None,
) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]]:
    """Jit `train_step` fused over a [num_steps, batch, ...] stack of batches, state donated and replicated."""
    return jax.jit(
        fuse_steps(train_step),
        in_shardings=(replicated(mesh), batch_sharding(mesh, leading_axes=1), replicated(mesh)),
        out_shardings=(replicated(mesh), replicated(mesh)),
        donate_argnums=0,
        compiler_options=compiler_options,
    )


def compile_eval_step(
    eval_step: Callable[[TrainState, Batch, jax.Array], Metrics], mesh: Mesh,
    compiler_options: dict[str, Any] | None = None,
) -> Callable[[TrainState, Batch, jax.Array], Metrics]:
    return jax.jit(
        eval_step,
        in_shardings=(replicated(mesh), batch_sharding(mesh), replicated(mesh)),
        out_shardings=replicated(mesh),
        compiler_options=compiler_options,
    )


def put_replicated(tree: Any, mesh: Mesh) -> Any:
    """`tree`, which every process holds whole and equal, as arrays replicated over the mesh."""
    return put_process_local(tree, replicated(mesh))
