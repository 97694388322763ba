"""Which store a run trains on: an explicit store, the default CelebA store, raw CelebA prepared on the
spot, or the built-in synthetic faces — in that order, saying which was chosen and why."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import ml_collections

from gan_arith.data.store import FaceStore
from gan_arith.errors import InputError

CELEBA_ENV = "GAN_ARITH_CELEBA"


def _has_size(store: FaceStore, size: int) -> bool:
    return size in store.image_sizes


def resolve_store(data: ml_collections.ConfigDict, image_size: int, seed: int) -> tuple[FaceStore, str]:
    """Open (or make) the store a run reads; returns it with a one-line description for the log."""
    if data.store:
        try:
            store = FaceStore(data.store)
        except (OSError, ValueError) as error:  # missing, or not a prepared store
            raise InputError(f"config.data.store={data.store}: {error}") from None
        if not _has_size(store, image_size):
            raise InputError(f"config.data.store {data.store} has sizes {store.image_sizes}, the model needs {image_size}")
        return store, f"prepared store {data.store}"
    default = Path(data.default_store)
    if (default / "manifest.json").exists():
        store = FaceStore(default)
        if _has_size(store, image_size):
            return store, f"prepared CelebA store {default}"
        print(f"{default} has no {image_size}x{image_size} faces (sizes {store.image_sizes}); looking further", file=sys.stderr)
    raw = data.celeba_dir or os.environ.get(CELEBA_ENV, "")
    if raw:
        from gan_arith.data import prepare

        option = "config.data.celeba_dir" if data.celeba_dir else f"${CELEBA_ENV}"
        try:
            source = prepare.celeba_source(raw)
        except (OSError, ValueError) as error:  # not the official layout (its checks name what is missing)
            raise InputError(f"{option}={raw}: {error}") from None

        target = default if not default.exists() else default.with_name(f"{default.name}_{image_size}")
        print(f"Preparing raw CelebA from {raw} into {target} (MTCNN face crops; resumable)", file=sys.stderr)
        processes = data.prepare_processes or os.cpu_count() or 1
        prepare.prepare(
            source, target, prepare.PrepareSettings(sizes=(image_size,)), processes=processes
        )
        return FaceStore(target), f"CelebA from {raw}, prepared into {target}"
    from gan_arith.data.synthetic import ensure_synthetic_store

    root = Path(data.synthetic_dir) / f"faces{data.synthetic_faces}-seed{seed}-{image_size}px"
    print(
        f"No CelebA found (no --config.data.store, no {default}, no ${CELEBA_ENV}): "
        f"using {data.synthetic_faces} built-in synthetic faces in {root}",
        file=sys.stderr,
    )
    store = ensure_synthetic_store(root, num_faces=data.synthetic_faces, image_sizes=(image_size,), seed=seed)
    return store, f"synthetic faces {root}"

