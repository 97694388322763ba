"""Which faces of a store a run uses: the selected faces it trains on, and the held-out ones it evaluates on."""

from __future__ import annotations

import ml_collections
import numpy as np

from gan_arith.data.store import FaceStore, check_query, partition_code
from gan_arith.errors import InputError


def select_faces(store: FaceStore, data: ml_collections.ConfigDict) -> np.ndarray:
    """Indices of the faces a run uses: partition and attribute query, capped at `max_faces`."""
    if data.query:
        check_query(data.query, store.attribute_names, "config.data.query")
    indices = store.select(data.query or None, data.partition or None)
    if len(indices) == 0:
        raise InputError(
            f"no faces in {store.root} match partition={data.partition!r} query={data.query!r} "
            f"({store.num_faces} faces in the store)"
        )
    return indices[: data.max_faces] if data.max_faces else indices


def held_out_faces(store: FaceStore, data: ml_collections.ConfigDict) -> np.ndarray:
    """Faces of the run's query it does not train on: the validation partition (the training partition
    for a run on the validation faces); never the test partition, which the evaluation experiments keep
    unseen. Empty for a run on every partition."""
    if not data.partition:
        return np.array([], np.int64)
    other = "train" if partition_code(data.partition) == partition_code("valid") else "valid"
    return store.select(data.query or None, other)
