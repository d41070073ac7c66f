"""The epoch schedule: warm-up, selection, focus filter, revision.

Defaults (docs/METHOD.md): epochs 0..warm_up_epochs-1 are full data; selection runs
from ``warm_up_epochs``; the focus filter of the erts modes starts
``cam_start_epoch`` epochs after warm-up; from ``start_revision`` on every epoch
is full data again. ``start_revision < 0`` disables revision. InfoBatch's
annealing (the last ``anneal_frac`` of the epochs on full data) is a revision
phase too: ``revision_start`` combines the two.
"""

from __future__ import annotations

import dataclasses
import enum
import math


def revision_start(start_revision: int, epochs: int, anneal_frac: float) -> int:
    """The first full-data epoch at the end: the earlier of ``start_revision`` (if >= 0) and the
    start of the last ``ceil(anneal_frac * epochs)`` epochs (if ``anneal_frac`` > 0); -1: none."""
    starts = [start_revision] if start_revision >= 0 else []
    if anneal_frac > 0:
        starts.append(epochs - math.ceil(anneal_frac * epochs))
    return min(starts) if starts else -1


class Phase(enum.Enum):
    WARMUP = "warmup"
    SELECT = "select"  # selection without the focus filter
    SELECT_CAM = "select_cam"  # selection with the focus filter (erts modes)
    REVISION = "revision"
    FULL = "full"  # mode `full`: no selection at all

    @property
    def full_data(self) -> bool:
        return self in (Phase.WARMUP, Phase.REVISION, Phase.FULL)


@dataclasses.dataclass(frozen=True)
class Schedule:
    warm_up_epochs: int = 5
    cam_start_epoch: int = 3
    start_revision: int = 50

    @property
    def cam_epoch(self) -> int:
        """First (absolute) epoch in which the focus filter runs."""
        return self.warm_up_epochs + self.cam_start_epoch

    def phase(self, epoch: int) -> Phase:
        if epoch < self.warm_up_epochs:
            return Phase.WARMUP
        if 0 <= self.start_revision <= epoch:
            return Phase.REVISION
        if epoch < self.cam_epoch:
            return Phase.SELECT
        return Phase.SELECT_CAM
