"""Attribute directions in latent space: fit, condition (project out other attributes), edit.

Two ways to find the direction of an attribute from latents labelled with it:
- `mean_difference_direction`: mean(latents with) - mean(latents without), the seeds' arithmetic
  (`smiling - neutral`) taken over many faces instead of three;
- `linear_direction`: the normal of a separating hyperplane (InterFaceGAN, Shen et al. 2020), here
  an L2-regularised, class-balanced logistic regression fitted by Newton's method in float64.
Both return unit vectors pointing towards the attribute, so `edit` strengths are in latent units.
"""

from __future__ import annotations

import numpy as np


def _check_labelled(latents: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    latents = np.asarray(latents, dtype=np.float64)
    labels = np.asarray(labels)
    if latents.ndim != 2:
        raise ValueError(f"latents must have shape [N, D], got {latents.shape}")
    if labels.dtype != np.bool_:
        raise ValueError(
            "labels must be a bool array (e.g. attributes[:, j] > 0 for int8 {-1, +1} attributes), "
            f"got {labels.dtype}"
        )
    if labels.shape != (latents.shape[0],):
        raise ValueError(f"labels must have shape [N] = ({latents.shape[0]},) to match latents, got {labels.shape}")
    positives = int(labels.sum())
    if positives == 0 or positives == labels.size:
        raise ValueError(
            f"labels must contain both classes to define a direction, got {positives} positive of {labels.size}"
        )
    return latents, labels


def _unit(vector: np.ndarray, what: str) -> np.ndarray:
    norm = np.linalg.norm(vector)
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError(f"{what} has zero or non-finite norm; cannot normalise it")
    return vector / norm


def mean_difference_direction(latents: np.ndarray, labels: np.ndarray, normalize: bool = True) -> np.ndarray:
    """mean(latents[labels]) - mean(latents[~labels]) as float64 [D], unit norm unless normalize=False.

    With normalize=False, `edit(..., alphas=[1])` moves a latent by exactly the difference of the
    two class means (the seeds' `smiling - neutral` on average).
    """
    latents, labels = _check_labelled(latents, labels)
    difference = latents[labels].mean(axis=0) - latents[~labels].mean(axis=0)
    return _unit(difference, "the mean difference") if normalize else difference


def _logistic_loss(design: np.ndarray, targets: np.ndarray, weights: np.ndarray, theta: np.ndarray, l2: float) -> float:
    logits = design @ theta
    # softplus(z) - y z, computed without overflow.
    per_sample = np.maximum(logits, 0) + np.log1p(np.exp(-np.abs(logits))) - targets * logits
    return float(weights @ per_sample + 0.5 * l2 * theta[:-1] @ theta[:-1])


def linear_direction(
    latents: np.ndarray,
    labels: np.ndarray,
    *,
    l2: float = 1e-3,
    balanced: bool = True,
    max_iterations: int = 100,
    tolerance: float = 1e-10,
) -> np.ndarray:
    """Unit normal [D] (float64) of a logistic-regression boundary separating labels True from False.

    Args:
      l2: ridge penalty on the weights (not the bias); keeps the fit finite on separable data.
      balanced: weight each class equally, so a rare attribute (e.g. Eyeglasses) still shapes
        the boundary instead of the intercept absorbing it.
      max_iterations, tolerance: Newton iterations stop when the step's norm is below tolerance.

    Raises:
      RuntimeError: if Newton's method does not converge in max_iterations.
    """
    latents, labels = _check_labelled(latents, labels)
    if l2 <= 0:
        raise ValueError(f"l2 must be > 0 (it keeps the fit finite on separable data), got {l2}")
    num, dim = latents.shape
    design = np.concatenate([latents, np.ones((num, 1))], axis=1)
    targets = labels.astype(np.float64)
    if balanced:
        weights = np.where(labels, 0.5 / labels.sum(), 0.5 / (~labels).sum())
    else:
        weights = np.full(num, 1.0 / num)
    penalty = np.full(dim + 1, l2)
    penalty[-1] = 0.0
    theta = np.zeros(dim + 1)
    loss = _logistic_loss(design, targets, weights, theta, l2)
    for _ in range(max_iterations):
        probabilities = 0.5 * (1.0 + np.tanh(0.5 * (design @ theta)))  # a sigmoid that cannot overflow
        gradient = design.T @ (weights * (probabilities - targets)) + penalty * theta
        curvature = weights * probabilities * (1.0 - probabilities)
        hessian = (design * curvature[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-12 * np.eye(dim + 1), gradient)
        # Backtracking keeps Newton monotone when the quadratic model overshoots.
        scale = 1.0
        while scale > 1e-6:
            candidate = theta - scale * step
            candidate_loss = _logistic_loss(design, targets, weights, candidate, l2)
            if candidate_loss <= loss:
                break
            scale *= 0.5
        theta, loss = candidate, candidate_loss
        if np.linalg.norm(scale * step) < tolerance * max(1.0, np.linalg.norm(theta)):
            return _unit(theta[:-1], "the fitted boundary normal")
    raise RuntimeError(f"logistic regression did not converge in {max_iterations} Newton iterations")


def project_out(direction: np.ndarray, *others: np.ndarray) -> np.ndarray:
    """Remove from `direction` its components along `others` (conditional editing).

    E.g. `project_out(smiling, male)` edits Smiling while leaving the Male score unchanged. The
    others are orthonormalised first (Gram-Schmidt, so correlated or dependent others are fine).
    The result is orthogonal to every other and keeps the norm of `direction`.

    Raises ValueError if `direction` lies (numerically) in the span of the others.
    """
    direction = np.asarray(direction, dtype=np.float64)
    if direction.ndim != 1:
        raise ValueError(f"direction must have shape [D], got {direction.shape}")
    norm = np.linalg.norm(direction)
    if norm == 0.0:
        raise ValueError("direction is zero")
    basis: list[np.ndarray] = []
    for index, other in enumerate(others):
        other = np.asarray(other, dtype=np.float64)
        if other.shape != direction.shape:
            raise ValueError(f"others[{index}] has shape {other.shape}, expected {direction.shape}")
        original_norm = np.linalg.norm(other)
        # Two passes of modified Gram-Schmidt keep the basis orthogonal to machine precision.
        for _ in range(2):
            for b in basis:
                other = other - (other @ b) * b
        other_norm = np.linalg.norm(other)
        if other_norm > 1e-10 * original_norm:  # else zero or in the span of earlier others: nothing new
            basis.append(other / other_norm)
    residual = direction
    for _ in range(2):
        for b in basis:
            residual = residual - (residual @ b) * b
    residual_norm = np.linalg.norm(residual)
    if residual_norm < 1e-8 * norm:
        raise ValueError("direction lies in the span of the directions to project out; nothing is left")
    return residual * (norm / residual_norm)


def edit(latents: np.ndarray, direction: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Strength sweep: latents + alpha * direction for each alpha -> [len(alphas), *latents.shape].

    latents is [N, D] (or any [..., D]); the result keeps the latents' floating dtype.
    """
    latents = np.asarray(latents)
    if not np.issubdtype(latents.dtype, np.floating):
        latents = latents.astype(np.float64)
    direction = np.asarray(direction)
    alphas = np.asarray(alphas).reshape(-1)
    if direction.shape != latents.shape[-1:]:
        raise ValueError(f"direction has shape {direction.shape}, expected ({latents.shape[-1]},) to match latents")
    offsets = alphas.reshape((-1,) + (1,) * latents.ndim) * direction
    return (latents[None] + offsets).astype(latents.dtype)
