"""Callbacks of a training run: selection, cost ledger, audit log, best weights, checkpoints.

Order matters: the cost ledger opens the epoch before selection (so re-scoring
is counted), selection decides the epoch's keep-mask in ``on_epoch_prepare``,
which ``ERTSModel.fit`` calls before it builds the epoch's input pipeline (so the
pipeline knows how many batches it holds), and the ledger, audit and
best-weight callbacks close the epoch before the checkpoint is written.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
import zlib

import keras
import numpy as np
import tensorflow as tf

from erts_tf import run_folder
from erts_tf.selection import policies
from erts_tf.selection.policies import FOCUS_MODES, Reason
from erts_tf.selection.schedule import Phase, Schedule
from erts_tf.selection.state import COUNTERS
from erts_tf.training.model import ERTSModel
from erts_tf.training.selection_config import StepPlan

log = logging.getLogger(__name__)


def effective_phase(mode: str, schedule: Schedule, epoch: int) -> Phase:
    """The schedule's phase; mode ``full`` is on full data in every epoch."""
    return Phase.FULL if mode == "full" else schedule.phase(epoch)


class EpochPreparingCallback(keras.callbacks.Callback):
    """A callback that does its per-epoch work in ``on_epoch_prepare(epoch)``, which
    ``ERTSModel.fit`` calls before it builds the epoch's dataset. Under any other fit (a plain
    ``keras.Model.fit``, the drop-in API) ``on_epoch_begin`` calls it instead."""

    _prepared = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._prepared != epoch:
            self.on_epoch_prepare(epoch)

    def on_epoch_prepare(self, epoch):
        """Sets ``_prepared``; subclasses call it first, then do the epoch's work."""
        self._prepared = epoch


class SelectionCallback(EpochPreparingCallback):
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
      rescore: ``rescore(ids, cam, epoch)`` scores the given sample ids as epoch ``epoch`` would
        see them (see ``run.run``); None disables re-scoring.
      rescore_every: cadence in selection epochs; 0 disables.
      always_cam: compute focus scores in every epoch (for audits and validity studies).
      focus_every: epoch level: refresh focus (Grad-CAM in the training step) in one of every
        ``focus_every`` epochs from the one before the filter starts; the decisions in between use
        the focus last computed (its epoch is in ``focus_epoch``). 1: every epoch.
      labels: ``(n,)`` labels of the training split, when known up front (the CLI); else the
        labels the state has seen (a never-seen sample counts as class 0 until it is seen).
    """

    def __init__(self, model: ERTSModel, schedule: Schedule, epochs: int | None = None, rescore=None,
                 rescore_every: int = 5, always_cam: bool = False, labels=None, focus_every: int = 1):
        super().__init__()
        self.focus_every = max(1, int(focus_every))
        self.labels = labels
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

    def on_epoch_prepare(self, epoch):
        """Decides epoch ``epoch``'s keep-mask (epoch level) or step plan (batch level)."""
        super().on_epoch_prepare(epoch)
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
        first = self.schedule.cam_epoch - 1
        cam = self.always_cam or (epoch >= first and (epoch - first) % self.focus_every == 0
                                  and self._focus_needed_after(epoch))
        if phase.full_data:
            self._set_full(state)
        else:
            if self._rescore_due(epoch):
                dropped = np.flatnonzero(~state.keep.numpy())
                if len(dropped):  # this epoch's decision needs fresh focus when the filter is on
                    self.rescore(dropped, cam=cam or (cam_active and self.mode in FOCUS_MODES), epoch=epoch)
            decision = policies.decide(self.mode, scores_of(state, self.labels), epoch,
                                       np.array([self.erts.selection.seed, epoch]),
                                       self.erts.selection.policy, cam_active=cam_active)
            state.set_decision(decision.keep, decision.reason, decision.weight)
        self.erts.set_plan(StepPlan(cam=cam))

    def _rescore_due(self, epoch: int) -> bool:
        if self.rescore is None or self.rescore_every <= 0:
            return False
        since = epoch - self.schedule.warm_up_epochs
        return since > 0 and since % self.rescore_every == 0

    @staticmethod
    def _set_full(state) -> None:
        state.set_decision(np.ones(state.n, bool), np.full(state.n, int(Reason.FULL)))


def scores_of(state, labels=None) -> policies.Scores:
    """The policies' view of the whole split's last scores, honest about their age: a sample never
    scored (``scored_epoch < 0``) and a focus never computed (``focus_epoch < 0``) are marked so."""
    label = state.label.value() if labels is None else tf.convert_to_tensor(labels, tf.int32)
    return policies.Scores.of(state.p_true.value(), state.focus.value(), tf.maximum(label, 0),
                              state.correct.value(), has_focus=state.focus_epoch.value() >= 0,
                              scored=state.scored_epoch.value() >= 0)


class CostLedger(EpochPreparingCallback):
    """Counts what each epoch read, forwarded, explained and back-propagated.

    Adds to the epoch logs (hence to TensorBoard and history):
      ``kept_fraction``: share of the training split back-propagated this epoch;
      ``effective_epochs``: back-propagated samples so far / n_train (the paper's);
      ``total_work_ratio``: (forward + Grad-CAM + backward sample-passes so far) /
        (2 * n_train * epochs so far), i.e. relative to full training.
    ``history`` holds one dict per finished epoch (serialisable; restored on resume).
    ``sum_reads``: ``records this worker read -> records all workers read`` (``distribute.sum_over_workers``,
    a collective every worker calls); None: this process's reads are all.
    """

    def __init__(self, model: ERTSModel, phase_of, sum_reads=None):
        super().__init__()
        self.erts = model
        self.phase_of = phase_of
        self.sum_reads = sum_reads
        self.history: list[dict] = []

    def on_epoch_prepare(self, epoch):
        super().on_epoch_prepare(epoch)
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
        if self.sum_reads is not None:
            worker_reads = delta["samples_read"]
            delta["samples_read"] = self.sum_reads(worker_reads)
            log.info("epoch %d: this worker read %d records, all workers %d", epoch, worker_reads,
                     delta["samples_read"])
        keep = self.erts.state.keep.numpy()
        entry = {"epoch": int(epoch), "phase": self.phase_of(epoch).value,
                 "kept": int(keep.sum()), "keep_crc32": zlib.crc32(np.packbits(keep).tobytes()), **delta,
                 "train_s": (self._train_end or now) - self._start, "wall_s": now - self._start}
        self.history.append(entry)
        in_training = self.erts.state.scored_in_training.numpy()
        entry["scores_from_training_forward"] = int(in_training.sum())
        log.info("epoch %d: kept %d of %d (%.1f %%), keep-mask crc32 %08x; last scores from a training-mode "
                 "forward for %d samples, from an inference-mode forward for %d", epoch, entry["kept"], n,
                 100.0 * entry["kept"] / n, entry["keep_crc32"], in_training.sum(), n - in_training.sum())
        totals = self.totals()
        entry.update(
            kept_fraction=delta["backward"] / n,
            effective_epochs=totals["effective_epochs"],
            total_work_ratio=totals["total_work_ratio"],
        )
        if logs is not None:
            for key in ("kept_fraction", "effective_epochs", "total_work_ratio"):
                logs[key] = entry[key]
            for key in ("loss", "macro_f1", "macro_auc", "val_loss", "val_macro_f1", "val_macro_auc"):
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

    Columns: epoch, sample_id, label (from the data; multi-label: the positive classes joined by ``+``),
    decision, reason, weight
    (the loss weight), p_true, focus (empty if never computed), scored_epoch,
    focus_epoch, score_forward (``training`` or ``inference`` mode), then one
    column per dataset extra (e.g. ``corruption``; names for class-label
    extras; text as text). On resume, rows of epochs >= the resumed epoch are
    removed first, so no row is duplicated.
    """

    def __init__(self, path: str, model: ERTSModel, class_names, extras=None, extra_names=None, labels=None):
        super().__init__()
        self.path = path
        self.erts = model
        self.labels = None if labels is None else np.asarray(labels)
        self.class_names = list(class_names)
        self.extras = extras or {}
        self.extra_names = extra_names or {}
        self.initial_epoch = 0

    def on_train_begin(self, logs=None):
        self._prev = self.erts.state.keep.numpy().copy()
        header = ["epoch", "sample_id", "label", "decision", "reason", "weight", "p_true", "focus", "scored_epoch",
                  "focus_epoch", "score_forward", *self.extras]
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
        labels = s["label"] if self.labels is None else self.labels
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f)
            for i in changed:
                extras = [self._extra(k, v[i]) for k, v in self.extras.items()]
                writer.writerow([
                    epoch, i, self.erts.task.label_text(labels[i], self.class_names), "kept" if s["keep"][i] else "dropped",
                    Reason(int(s["reason"][i])).name.lower(), f"{s['weight'][i]:.4f}",
                    f"{s['p_true'][i]:.5f}" if s["scored_epoch"][i] >= 0 else "",
                    f"{s['focus'][i]:.5f}" if s["focus_epoch"][i] >= 0 else "",
                    s["scored_epoch"][i], s["focus_epoch"][i],
                    ("training" if s["scored_in_training"][i] else "inference") if s["scored_epoch"][i] >= 0 else "",
                    *extras,
                ])

    def _extra(self, key, value):
        names = self.extra_names.get(key)
        if names:
            return names[int(value)]
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return int(value) if np.issubdtype(type(value), np.integer) else value


class BestWeights(keras.callbacks.Callback):
    """Saves the backbone weights with the best ``monitor`` (``val_macro_f1``; a multi-label run's
    ``task.monitor``, ``val_macro_auc``) to ``path``."""

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


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch: a ``tf.train`` checkpoint (weights, optimizer, selection state)
    and ``progress.json`` (finished epoch, cost ledger, best metric), written last."""

    def __init__(self, manager: tf.train.CheckpointManager, run_dir: str, ledger: CostLedger, best: BestWeights):
        super().__init__()
        self.manager, self.run_dir, self.ledger, self.best = manager, run_dir, ledger, best

    def on_epoch_end(self, epoch, logs=None):
        self.manager.save(checkpoint_number=epoch)
        progress = {
            "finished_epoch": int(epoch),
            "ledger": self.ledger.history,
            "best": {"value": self.best.best, "epoch": self.best.best_epoch},
        }
        run_folder.write_json(self.run_dir, run_folder.PROGRESS, progress)
