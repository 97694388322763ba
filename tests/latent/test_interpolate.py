"""Tests for gan_arith/latent/interpolate.py: lerp, slerp and paths."""

import numpy as np
import pytest

from gan_arith.latent import interpolate

TS = np.linspace(0.0, 1.0, 11)


def test_lerp_values():
    a, b = np.array([0.0, 2.0]), np.array([4.0, -2.0])
    np.testing.assert_allclose(interpolate.lerp(a, b, [0.0, 0.25, 1.0]), [[0, 2], [1, 1], [4, -2]])


def test_slerp_endpoints_exact_and_dtype_kept():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 100)).astype(np.float32)
    path = interpolate.slerp(a, b, TS)
    assert path.shape == (11, 100) and path.dtype == np.float32
    np.testing.assert_array_equal(path[0], a)
    np.testing.assert_array_equal(path[-1], b)


def test_slerp_keeps_the_prior_norm_while_lerp_shrinks_it():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 20, 100))  # 20 pairs of typical 100-d prior samples
    low = np.minimum(np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1))
    high = np.maximum(np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1))
    slerp_norms = np.linalg.norm(interpolate.slerp(a, b, TS), axis=-1)  # [T, 20]
    lerp_midpoint_norms = np.linalg.norm(interpolate.lerp(a, b, [0.5])[0], axis=-1)
    # Along the great circle the norm stays between the endpoints' norms...
    assert np.all(slerp_norms >= 0.99 * low) and np.all(slerp_norms <= 1.01 * high)
    # ...while independent 100-d Gaussians are nearly orthogonal, so the chord's midpoint has
    # norm about |a| / sqrt(2).
    assert np.all(lerp_midpoint_norms < 0.8 * low)


def test_slerp_follows_the_great_circle():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    np.testing.assert_allclose(interpolate.slerp(a, b, [0.5])[0], [np.sqrt(0.5), np.sqrt(0.5)])
    angles = np.arctan2(*interpolate.slerp(a, b, TS).T[::-1])
    np.testing.assert_allclose(np.diff(angles), np.pi / 20)  # equal angular steps


def test_slerp_nearly_parallel_and_batched():
    a = np.array([1.0, 2.0, 3.0])
    b = a * (1 + 1e-9) + 1e-12
    np.testing.assert_allclose(interpolate.slerp(a, b, TS), interpolate.lerp(a, b, TS), rtol=1e-12)
    assert np.all(np.isfinite(interpolate.slerp(a, a, TS)))
    rng = np.random.default_rng(2)
    starts, ends = rng.normal(size=(2, 4, 8))  # 4 independent pairs at once
    batched = interpolate.slerp(starts, ends, TS)
    assert batched.shape == (11, 4, 8)
    np.testing.assert_allclose(batched[:, 2], interpolate.slerp(starts[2], ends[2], TS))


def test_slerp_errors():
    with pytest.raises(ValueError, match="opposite"):
        interpolate.slerp(np.array([1.0, 0.0]), np.array([-1.0, 0.0]), TS)
    with pytest.raises(ValueError, match="non-zero"):
        interpolate.slerp(np.zeros(2), np.ones(2), TS)
    with pytest.raises(ValueError, match="same shape"):
        interpolate.slerp(np.ones(2), np.ones(3), TS)


@pytest.mark.parametrize("method", ["slerp", "lerp"])
def test_interpolate_path_passes_through_every_point(method):
    rng = np.random.default_rng(3)
    points = rng.normal(size=(4, 10))
    path = interpolate.interpolate_path(points, steps_per_segment=5, method=method)
    assert path.shape == (16, 10)
    np.testing.assert_array_equal(path[::5], points)
    function = getattr(interpolate, method)
    np.testing.assert_allclose(path[5:10], function(points[1], points[2], np.arange(5) / 5))


def test_interpolate_path_errors():
    with pytest.raises(ValueError, match="P >= 2"):
        interpolate.interpolate_path(np.zeros((1, 3)), 4)
    with pytest.raises(ValueError, match="method"):
        interpolate.interpolate_path(np.ones((2, 3)), 4, method="cubic")
