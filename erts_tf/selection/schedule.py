"""The epoch schedule: warm-up, selection, focus filter, revision.

Defaults (METHOD.md): epochs 0..warm_up_epochs-1 are full data; selection runs
from ``warm_up_epochs``; the focus filter of the erts modes starts
``cam_start_epoch`` epochs after warm-up; from ``start_revision`` on every epoch
is full data again. ``start_revision < 0`` disables revision.
"""

from __future__ import annotations

import dataclasses
import enum


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
