"""What decides which samples a run trains on (``SelectionConfig``) and what the compiled train
step does in an epoch (``StepPlan``). Free of Keras, so that ``erts_tf.flags`` can name the choices
without importing the model."""

from __future__ import annotations

import dataclasses

from erts_tf.explain import focus as focus_lib
from erts_tf.selection import policies

LEVELS = ("epoch", "batch")


@dataclasses.dataclass(frozen=True)
class SelectionConfig:
    """Everything that decides which samples are trained on."""

    mode: str = "erts"
    level: str = "epoch"
    policy: policies.PolicyConfig = policies.PolicyConfig()
    focus_score: str = "entropy"
    seed: int = 0

    def __post_init__(self):
        if self.mode not in policies.MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {', '.join(policies.MODES)}")
        if self.level not in LEVELS:
            raise ValueError(f"unknown selection level {self.level!r}; choose one of {', '.join(LEVELS)}")
        focus_lib.get(self.focus_score)


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """What the compiled train step does this epoch (a change retraces it).

    Attributes:
      cam: compute Grad-CAM focus scores of the trained samples.
      batch_select: run the batch-level policy (score pass + masked training).
      cam_active: the erts modes' focus filter is on (batch level).
    """

    cam: bool = False
    batch_select: bool = False
    cam_active: bool = False
