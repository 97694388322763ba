"""tf.data input pipeline over a prepared-faces store (TensorFlow imported lazily, CPU only).

Batch order is the device-resident path's (``gan_arith.data.device``): epoch
``e`` visits ``indices[epoch_permutation(seed, e, len(indices))]``, global batch
``k`` is positions ``[k*B, (k+1)*B)`` of that order (the remainder dropped), and
with several JAX processes each takes its contiguous ``B / process_count``
slice of every global batch. Images are read from the store's memory maps by a
parallel, order-preserving ``map`` and prefetched; batches stay uint8
(normalisation to [-1, 1] happens on device).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from gan_arith.data.device import epoch_permutation
from gan_arith.data.store import FaceStore


def host_batch_indices(
    seed: int,
    epoch: int,
    indices: np.ndarray,
    batch_size: int,
    process_index: int = 0,
    process_count: int = 1,
) -> np.ndarray:
    """Store indices int64 ``[num_batches, batch_size // process_count]`` this host reads in epoch ``epoch``."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 1:
        raise ValueError(f"indices must be 1-D, got shape {indices.shape}")
    if batch_size < 1 or batch_size % process_count:
        raise ValueError(f"batch_size {batch_size} must be a positive multiple of process_count {process_count}")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    num_batches = len(indices) // batch_size
    if num_batches == 0:
        raise ValueError(f"batch_size {batch_size} exceeds the {len(indices)} selected faces")
    order = indices[epoch_permutation(seed, epoch, len(indices))]
    per_host = batch_size // process_count
    batches = order[: num_batches * batch_size].reshape(num_batches, batch_size)
    return batches[:, process_index * per_host : (process_index + 1) * per_host]


def make_tfdata_iterator(
    store: FaceStore,
    *,
    size: int,
    batch_size: int,
    seed: int,
    epoch: int,
    indices: np.ndarray | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    start_step: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    """This host's batches of one epoch: {"image": uint8 [b, S, S, 3], "attributes": int8 [b, A]}.

    Args:
      store: an open store; images come from its memory maps.
      size: image size (one of ``store.image_sizes``).
      batch_size: the global batch size B (all hosts together); b = B / process_count per host.
      seed, epoch: the order, identical to the device-resident path's for the same seed.
      indices: faces to draw from (e.g. ``store.select("Smiling", "train")``); default all.
      process_index, process_count: this host's slice; default ``jax.process_index()/count()``.
      start_step: skip this many batches (to resume mid-epoch).
    """
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if size not in store.image_sizes:
        raise ValueError(f"{store.root}: no {size}x{size} images; the store has sizes {store.image_sizes}")
    indices = np.arange(store.num_faces) if indices is None else np.asarray(indices)
    rows = host_batch_indices(seed, epoch, indices, batch_size, process_index, process_count)
    if not 0 <= start_step <= len(rows):
        raise ValueError(f"start_step {start_step} not in [0, {len(rows)}]")
    rows = rows[start_step:]
    attributes = store.attributes

    import tensorflow as tf

    _hide_gpus_from_tf(tf)

    def load(batch_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return store.gather(size, batch_rows), attributes[batch_rows]

    def read(batch_rows):
        image, attrs = tf.numpy_function(load, [batch_rows], (tf.uint8, tf.int8), stateful=False)
        image.set_shape((rows.shape[1], size, size, 3))
        attrs.set_shape((rows.shape[1], attributes.shape[1]))
        return {"image": image, "attributes": attrs}

    dataset = (
        tf.data.Dataset.from_tensor_slices(rows)
        .map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    return dataset.as_numpy_iterator()


def _hide_gpus_from_tf(tf) -> None:
    """Keep TF off the accelerators, which belong to JAX (no-op once TF has initialised)."""
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        pass
