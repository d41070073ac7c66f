"""``PolicyConfig``: the hyper-parameters of every selection policy. Free of TensorFlow, so that
``RunConfig`` takes its defaults from here (one place states them)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """Hyper-parameters of every policy (flags of the same names)."""

    tau: float = 0.3
    decay: float = 0.99
    cam_keep_frac: float = 0.7
    n_classes: int = 5
    prune_ratio: float = 0.5
    unreliable_frac: float = 0.2
    unreliable_weight: float = 0.0
    min_keep_frac: float = 0.0
