"""The learning rate of each epoch: a pure function of the epoch (so resume-safe), applied by
``keras.callbacks.LearningRateScheduler`` in the training run."""

from __future__ import annotations

import math

LR_SCHEDULES = ("exponential", "cosine")


def learning_rate(schedule: str, lr0: float, epoch: int, epochs: int, decay: float = 0.98,
                  warmup_epochs: int = 0, final_frac: float = 0.0) -> float:
    """The learning rate of ``epoch`` (a pure function of the epoch, so resume-safe).

    ``exponential``: the reference, ``lr0 * decay**epoch``. ``cosine``: a linear warm-up from
    ``lr0 / (warmup_epochs + 1)`` to ``lr0`` over ``warmup_epochs``, then a half cosine from ``lr0``
    to ``final_frac * lr0`` at the last epoch (``epochs - 1``).
    """
    if schedule == "exponential":
        return lr0 * decay**epoch
    if schedule != "cosine":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
    if epoch < warmup_epochs:
        return lr0 * (epoch + 1) / (warmup_epochs + 1)
    span = max(1, epochs - 1 - warmup_epochs)
    progress = min(1.0, (epoch - warmup_epochs) / span)
    return lr0 * (final_frac + (1.0 - final_frac) * 0.5 * (1.0 + math.cos(math.pi * progress)))
