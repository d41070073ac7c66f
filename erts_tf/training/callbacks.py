"""Callbacks of a training run: selection, cost ledger, audit log, best weights, checkpoints.

Order matters and is fixed by ``standard_callbacks``: the cost ledger opens the
epoch before selection (so re-scoring is counted), selection decides the
epoch's keep-mask before the input pipeline is iterated, and the ledger, audit
and best-weight callbacks close the epoch before the checkpoint is written.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
import zlib

import keras
import numpy as np
import tensorflow as tf

from erts_tf.selection import policies
from erts_tf.selection.policies import FOCUS_MODES, Reason
from erts_tf.selection.schedule import Phase, Schedule
from erts_tf.selection.state import COUNTERS
from erts_tf.training.model import ERTSModel, StepPlan

log = logging.getLogger(__name__)


def effective_phase(mode: str, schedule: Schedule, epoch: int) -> Phase:
    """The schedule's phase; mode ``full`` is on full data in every epoch."""
    return Phase.FULL if mode == "full" else schedule.phase(epoch)


class SelectionCallback(keras.callbacks.Callback):
    """Decides each epoch's keep-mask (epoch level) or step plan (batch level).

    Epoch level: at the start of epoch ``e`` the policy runs over the whole
    training split on the scores each sample got the last time it was seen.
    Every ``rescore_every`` selection epochs (and never in full-data epochs)
    the currently dropped samples are first re-scored with one inference
    forward (+ Grad-CAM for the erts modes), so that a dropped sample can come
    back; this work is counted as ``forward_score`` / ``gradcam``.

    Args:
      model: the ``ERTSModel``.
      schedule: warm-up / cam start / revision.
      epochs: total epochs of the run (to know whether focus is still needed); None: from ``fit``.
      rescore: ``rescore(ids, cam)`` scores the given sample ids (see ``Trainer``); None
        disables re-scoring.
      rescore_every: cadence in selection epochs; 0 disables.
      always_cam: compute focus scores in every epoch (for audits and validity studies).
    """

    def __init__(self, model: ERTSModel, schedule: Schedule, epochs: int | None = None, rescore=None,
                 rescore_every: int = 5, always_cam: bool = False):
        super().__init__()
        self.erts = model
        self.schedule = schedule
        self.epochs = epochs
        self.rescore = rescore
        self.rescore_every = rescore_every
        self.always_cam = always_cam

    def on_train_begin(self, logs=None):
        if self.epochs is None:
            self.epochs = self.params.get("epochs")

    @property
    def mode(self) -> str:
        return self.erts.selection.mode

    def phase(self, epoch: int) -> Phase:
        return effective_phase(self.mode, self.schedule, epoch)

    def _focus_needed_after(self, epoch: int) -> bool:
        """Whether a later epoch's decision uses focus scores gathered in ``epoch``."""
        if self.mode not in FOCUS_MODES:
            return False
        return any(self.phase(e) == Phase.SELECT_CAM for e in range(epoch + 1, self.epochs))

    def on_epoch_begin(self, epoch, logs=None):
        state = self.erts.state
        state.epoch.assign(epoch)
        state.step.assign(0)
        phase = self.phase(epoch)
        cam_active = phase == Phase.SELECT_CAM
        if self.erts.selection.level == "batch":
            if phase.full_data:
                self._set_full(state)
            self.erts.set_plan(StepPlan(
                cam=self.always_cam or (cam_active and self.mode in FOCUS_MODES),
                batch_select=not phase.full_data,
                cam_active=cam_active,
            ))
            return
        # Focus is computed from the epoch before the filter starts on, while a later epoch still uses it.
        cam = self.always_cam or (epoch >= self.schedule.cam_epoch - 1 and self._focus_needed_after(epoch))
        if phase.full_data:
            self._set_full(state)
        else:
            if self._rescore_due(epoch):
                dropped = np.flatnonzero(~state.keep.numpy())
                if len(dropped):  # this epoch's decision needs fresh focus when the filter is on
                    self.rescore(dropped, cam=cam or (cam_active and self.mode in FOCUS_MODES))
            scores = policies.Scores.of(state.p_true.value(), state.focus.value(),
                                        tf.maximum(state.label.value(), 0), state.correct.value())
            decision = policies.decide(self.mode, scores, epoch, np.array([self.erts.selection.seed, epoch]),
                                       self.erts.selection.policy, cam_active=cam_active)
            state.set_decision(decision.keep, decision.reason)
        self.erts.set_plan(StepPlan(cam=cam))

    def _rescore_due(self, epoch: int) -> bool:
        if self.rescore is None or self.rescore_every <= 0:
            return False
        since = epoch - self.schedule.warm_up_epochs
        return since > 0 and since % self.rescore_every == 0

    @staticmethod
    def _set_full(state) -> None:
        state.set_decision(np.ones(state.n, bool), np.full(state.n, int(Reason.FULL)))


class CostLedger(keras.callbacks.Callback):
    """Counts what each epoch read, forwarded, explained and back-propagated.

    Adds to the epoch logs (hence to TensorBoard and history):
      ``kept_fraction``: share of the training split back-propagated this epoch;
      ``effective_epochs``: back-propagated samples so far / n_train (the paper's);
      ``total_work_ratio``: (forward + Grad-CAM + backward sample-passes so far) /
        (2 * n_train * epochs so far), i.e. relative to full training.
    ``history`` holds one dict per finished epoch (serialisable; restored on resume).
    """

    def __init__(self, model: ERTSModel, phase_of):
        super().__init__()
        self.erts = model
        self.phase_of = phase_of
        self.history: list[dict] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._train_end = None
        self._counters = self.erts.state.counter_values()

    def on_test_begin(self, logs=None):
        if self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        n = self.erts.state.n
        counters = self.erts.state.counter_values()
        delta = {k: counters[k] - self._counters[k] for k in COUNTERS}
        keep = self.erts.state.keep.numpy()
        entry = {"epoch": int(epoch), "phase": self.phase_of(epoch).value,
                 "kept": int(keep.sum()), "keep_crc32": zlib.crc32(np.packbits(keep).tobytes()), **delta,
                 "train_s": (self._train_end or now) - self._start, "wall_s": now - self._start}
        self.history.append(entry)
        log.info("epoch %d: kept %d of %d, keep-mask crc32 %08x", epoch, entry["kept"], n, entry["keep_crc32"])
        totals = self.totals()
        entry.update(
            kept_fraction=delta["backward"] / n,
            effective_epochs=totals["effective_epochs"],
            total_work_ratio=totals["total_work_ratio"],
        )
        if logs is not None:
            for key in ("kept_fraction", "effective_epochs", "total_work_ratio"):
                logs[key] = entry[key]
            for key in ("loss", "macro_f1", "val_loss", "val_macro_f1"):
                if key in logs:
                    entry[key] = float(logs[key])

    def totals(self) -> dict:
        """Run totals over ``history``."""
        n = self.erts.state.n
        summed = {k: sum(e[k] for e in self.history) for k in (*COUNTERS, "train_s", "wall_s")}
        work = summed["forward_train"] + summed["forward_score"] + summed["gradcam"] + summed["backward"]
        epochs = max(1, len(self.history))
        return {
            **summed,
            "epochs": len(self.history),
            "effective_epochs": summed["backward"] / n,
            "total_work_sample_passes": work,
            "total_work_ratio": work / (2.0 * n * epochs),
        }


class AuditLog(keras.callbacks.Callback):
    """Appends to ``audit.csv`` one row per (sample_id, epoch) whose kept/dropped status changed.

    Columns: epoch, sample_id, label, decision, reason, p_true, focus,
    scored_epoch, then one column per dataset extra (e.g. ``corruption``; names
    for class-label extras). On resume, rows of epochs >= the resumed epoch are
    removed first, so no row is duplicated.
    """

    def __init__(self, path: str, model: ERTSModel, class_names, extras=None, extra_names=None):
        super().__init__()
        self.path = path
        self.erts = model
        self.class_names = list(class_names)
        self.extras = extras or {}
        self.extra_names = extra_names or {}
        self.initial_epoch = 0

    def on_train_begin(self, logs=None):
        self._prev = self.erts.state.keep.numpy().copy()
        header = ["epoch", "sample_id", "label", "decision", "reason", "p_true", "focus", "scored_epoch", *self.extras]
        if os.path.exists(self.path):
            with open(self.path, newline="") as f:
                rows = [r for r in csv.reader(f)]
            kept = [r for r in rows[1:] if int(r[0]) < self.initial_epoch]
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerows([header, *kept])
        else:
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(header)

    def on_epoch_end(self, epoch, logs=None):
        s = self.erts.state.snapshot()
        changed = np.flatnonzero(s["keep"] != self._prev)
        self._prev = s["keep"].copy()
        labels = s["label"]
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f)
            for i in changed:
                extras = [self._extra(k, v[i]) for k, v in self.extras.items()]
                writer.writerow([
                    epoch, i, self.class_names[labels[i]], "kept" if s["keep"][i] else "dropped",
                    Reason(int(s["reason"][i])).name.lower(), f"{s['p_true'][i]:.5f}", f"{s['focus'][i]:.5f}",
                    s["scored_epoch"][i], *extras,
                ])

    def _extra(self, key, value):
        names = self.extra_names.get(key)
        return names[int(value)] if names else (int(value) if np.issubdtype(type(value), np.integer) else value)


class BestWeights(keras.callbacks.Callback):
    """Saves the backbone weights with the best ``val_macro_f1`` to ``path``."""

    def __init__(self, model: ERTSModel, path: str, monitor: str = "val_macro_f1"):
        super().__init__()
        self.erts = model
        self.path = path
        self.monitor = monitor
        self.best = -np.inf
        self.best_epoch = -1

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and float(value) > self.best:
            self.best, self.best_epoch = float(value), int(epoch)
            self.erts.backbone.save_weights(self.path)


class LearningRateDecay(keras.callbacks.Callback):
    """``lr = lr0 * factor**epoch`` at the start of every epoch (a function of the epoch: resume-safe)."""

    def __init__(self, lr0: float, factor: float = 0.98):
        super().__init__()
        self.lr0, self.factor = lr0, factor

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate.assign(self.lr0 * self.factor**epoch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(self.model.optimizer.learning_rate.numpy())


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch: a ``tf.train`` checkpoint (weights, optimizer, selection state)
    and ``progress.json`` (finished epoch, cost ledger, best metric), written last."""

    def __init__(self, manager: tf.train.CheckpointManager, progress_path: str, ledger: CostLedger,
                 best: BestWeights):
        super().__init__()
        self.manager, self.progress_path, self.ledger, self.best = manager, progress_path, ledger, best

    def on_epoch_end(self, epoch, logs=None):
        self.manager.save(checkpoint_number=epoch)
        progress = {
            "finished_epoch": int(epoch),
            "ledger": self.ledger.history,
            "best": {"value": self.best.best, "epoch": self.best.best_epoch},
        }
        tmp = self.progress_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(progress, f, indent=1)
        os.replace(tmp, self.progress_path)
