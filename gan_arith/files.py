"""Atomic file writes: a reader (or a run killed mid-write) sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], *, temp_prefix: str = ".tmp-") -> Path:
    """Write `path` via `write(binary_file)` to a temporary file in the same folder, fsync, then rename.

    The file gets the usual permissions (0666 less the umask), not mkstemp's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix + path.name + ".")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda file: file.write(text.encode()))


def write_json(obj: Any, path: str | os.PathLike, indent: int = 1) -> Path:
    """`json.dump(obj)` into `path`, atomically (argument order as in json.dump)."""
    return write_text(path, json.dumps(obj, indent=indent) + "\n")
