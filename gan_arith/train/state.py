"""The types every step, the loop and the evaluation tools share: a train state, a batch, a step's metrics."""

from __future__ import annotations

from typing import Any

import jax
from flax import struct

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


@struct.dataclass
class TrainState:
    """Everything a run needs to continue: for the GAN, params and opt_state are {"generator", "discriminator"} dicts."""

    step: jax.Array
    params: Any
    opt_state: Any
    batch_stats: Any = struct.field(default_factory=dict)
    # A moving average of parameters used for sampling (the GAN's generator when its steps keep one).
    ema_params: Any = struct.field(default_factory=dict)
