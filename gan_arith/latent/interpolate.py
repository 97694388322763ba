"""Linear and spherical interpolation between latent points.

Under a Gaussian prior N(0, I_D), latent norms concentrate near sqrt(D); the straight line between
two such points passes through much shorter vectors (the midpoint of two independent draws has
norm about sqrt(D / 2)), which a generator rarely saw in training. Spherical interpolation (slerp,
Shoemake 1985; White 2016 "Sampling Generative Networks") follows the great circle instead and keeps
the norm typical of the prior.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

# Below this angle (radians) slerp and lerp agree to ~1e-12 and slerp's 1/sin(omega) is unstable.
_PARALLEL_ANGLE = 1e-6


def _prepare(a: np.ndarray, b: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.dtype]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim == 0:
        raise ValueError(f"a and b must be latent vectors [..., D] of the same shape, got {a.shape} and {b.shape}")
    dtype = np.result_type(a.dtype, b.dtype, np.float32)
    ts = np.asarray(ts, dtype=np.float64)
    if ts.ndim != 1:
        raise ValueError(f"ts must be a 1-D array of interpolation times, got shape {ts.shape}")
    return a.astype(np.float64), b.astype(np.float64), ts.reshape((-1,) + (1,) * a.ndim), dtype


def lerp(a: np.ndarray, b: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """(1 - t) a + t b for each t: a, b [..., D], ts [T] -> [T, ..., D]."""
    a, b, t, dtype = _prepare(a, b, ts)
    return ((1.0 - t) * a + t * b).astype(dtype)


def slerp(a: np.ndarray, b: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Spherical interpolation along the great circle from a to b: a, b [..., D], ts [T] -> [T, ..., D].

    sin((1 - t) w) / sin(w) a + sin(t w) / sin(w) b, with w the angle between a and b; t = 0 and
    t = 1 give a and b exactly. When a and b are (nearly) parallel the formula degenerates and
    this falls back to lerp, which then coincides with it.

    Raises ValueError for a zero vector or for (nearly) opposite a and b, where the great circle
    is not unique.
    """
    a, b, t, dtype = _prepare(a, b, ts)
    norm_a = np.linalg.norm(a, axis=-1, keepdims=True)
    norm_b = np.linalg.norm(b, axis=-1, keepdims=True)
    if np.any(norm_a == 0) or np.any(norm_b == 0):
        raise ValueError("slerp needs non-zero vectors: the angle to a zero vector is undefined")
    cosine = np.clip(np.sum(a * b, axis=-1, keepdims=True) / (norm_a * norm_b), -1.0, 1.0)
    omega = np.arccos(cosine)
    if np.any(omega > np.pi - _PARALLEL_ANGLE):
        raise ValueError("slerp between opposite vectors is undefined (every great circle joins them)")
    parallel = omega < _PARALLEL_ANGLE
    safe_omega = np.where(parallel, 1.0, omega)
    sin_omega = np.sin(safe_omega)
    weight_a = np.where(parallel, 1.0 - t, np.sin((1.0 - t) * safe_omega) / sin_omega)
    weight_b = np.where(parallel, t, np.sin(t * safe_omega) / sin_omega)
    return (weight_a * a + weight_b * b).astype(dtype)


def interpolate_path(
    points: np.ndarray, steps_per_segment: int, method: Literal["slerp", "lerp"] = "slerp"
) -> np.ndarray:
    """Interpolate through P >= 2 points [P, D] -> [(P - 1) * steps_per_segment + 1, D].

    Each segment contributes steps_per_segment evenly spaced points (its start included, its end
    excluded), and the last point closes the path, so points[i] sits exactly at row i * steps_per_segment.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[0] < 2:
        raise ValueError(f"points must have shape [P, D] with P >= 2, got {points.shape}")
    if steps_per_segment < 1:
        raise ValueError(f"steps_per_segment must be >= 1, got {steps_per_segment}")
    functions = {"slerp": slerp, "lerp": lerp}
    if method not in functions:
        raise ValueError(f"method must be one of {sorted(functions)}, got {method!r}")
    ts = np.arange(steps_per_segment) / steps_per_segment
    segments = [functions[method](start, end, ts) for start, end in zip(points[:-1], points[1:])]
    last = points[-1:].astype(segments[0].dtype)
    return np.concatenate(segments + [last], axis=0)
