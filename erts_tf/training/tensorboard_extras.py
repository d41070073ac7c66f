"""TensorBoard extras: selection-score histograms and Grad-CAM overlays of validation ECGs.

Keras's ``TensorBoard`` callback already logs the epoch scalars (loss,
macro-F1, lr, kept_fraction, effective_epochs, total_work_ratio). This
callback adds, in ``<log_dir>/extras``:

* after every epoch, histograms of the per-sample selection state
  (``model.state``) split by the current keep-mask: ``selection/p_true_kept``,
  ``selection/p_true_dropped`` and, once Grad-CAM has run,
  ``selection/focus_kept``, ``selection/focus_dropped`` (only samples scored at
  least once; a dropped sample's score is the one its drop was decided on);
* every ``every`` epochs (from epoch 0) and after the last epoch, an image
  ``gradcam/validation``: one lead of a fixed set of validation ECGs (the first
  of each class, by sample id) with the true-class Grad-CAM map of the current
  weights as a coloured band behind the trace.

The Grad-CAM passes here are monitoring, in inference mode, and are NOT counted
in the cost ledger (they touch no selection-state variable).

Example:
  >>> callbacks.append(TensorBoardExtras(model, os.path.join(out, "logs"), data.validation, every=5))
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from erts_tf.explain.gradcam import gradcam_over_time
from erts_tf.training import task as task_lib


def gradcam_maps(cam_model: keras.Model, signal, labels, task=task_lib.SINGLE) -> tuple[np.ndarray, np.ndarray]:
    """True-class Grad-CAM maps and class probabilities, in inference mode.

    Args:
      cam_model: ``x -> (target activations, logits)`` (``ERTSModel.cam_model``).
      signal: ``(batch, time, leads)`` z-scored.
      labels: ``(batch,)`` class whose logit is explained (multi-label: ``(batch, C)``, ``task.cam_target``).
      task: the run's ``training.task``.

    Returns:
      ``(maps (batch, time'), probs (batch, n_classes))`` as NumPy arrays.
    """
    signal = tf.convert_to_tensor(signal, tf.float32)
    labels = tf.convert_to_tensor(labels, tf.int32)
    with tf.GradientTape() as tape:
        activations, logits = cam_model(signal, training=False)
        target = task.cam_target(logits, labels)
    grads = tape.gradient(target, activations)
    return gradcam_over_time(activations, grads).numpy(), task.probabilities(logits).numpy()


def gradcam_titles(ids, labels, probs, maps, class_names, task=task_lib.SINGLE) -> list[str]:
    """One title per drawn ECG: its id, true and predicted classes, its confidence."""
    titles = []
    for i, y, q, m in zip(ids, labels, probs, maps):
        if task.name == "single":
            confidence = f"p_true {q[y]:.2f}"
        else:
            confidence = "p " + " ".join(f"{n} {p:.2f}" for n, p, t in zip(class_names, q, y) if t > 0)
        titles.append(f"validation #{i}: true {task.label_text(y, class_names)}, "
                      f"predicted {task.predicted_text(q, class_names)}, {confidence}"
                      + ("  (empty map: no positive evidence for the true class)" if m.max() == 0 else ""))
    return titles


def example_ids(labels: np.ndarray, n: int) -> np.ndarray:
    """``n`` sample ids: the first of each class (class order; multi-label ``(n, C)``: the first member of
    each class), then the next ids not yet taken."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        first = list(dict.fromkeys(int(np.flatnonzero(labels[:, c] > 0)[0]) for c in range(labels.shape[1])
                                   if (labels[:, c] > 0).any()))
    else:
        first = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    rest = [i for i in range(len(labels)) if i not in set(first)]
    return np.array((first + rest)[:n], np.int64)


def class_count(labels: np.ndarray) -> int:
    """The classes present in ``labels`` (``(n,)`` indices or ``(n, C)`` multi-hot)."""
    labels = np.asarray(labels)
    return int((labels > 0).any(axis=0).sum()) if labels.ndim == 2 else len(np.unique(labels))


class TensorBoardExtras(keras.callbacks.Callback):
    """Histograms of p_true/focus of kept vs dropped samples; Grad-CAM overlays of validation ECGs.

    Args:
      model: the ``ERTSModel`` (its ``state`` and ``cam_model`` are read).
      log_dir: the run's TensorBoard folder; events go to ``<log_dir>/extras``.
      validation: the validation ``SplitArrays`` (z-scored signals).
      every: epochs between Grad-CAM images (0: only after the last epoch).
      n_examples: validation ECGs in the image (default: one per class present, at most 8).
      lead: lead index to draw (default: 1, lead II of a 12-lead ECG, or 0).
    """

    def __init__(self, model, log_dir: str, validation, every: int = 5, n_examples: int | None = None, lead: int | None = None):
        super().__init__()
        self.erts = model
        self.log_dir = os.path.join(log_dir, "extras")
        self.every = int(every)
        leads = validation.signal.shape[-1]
        self.lead = (1 if leads > 1 else 0) if lead is None else int(lead)
        if not 0 <= self.lead < leads:
            raise ValueError(f"lead {self.lead} out of range for {leads}-lead signals")
        n_examples = n_examples or min(8, class_count(validation.label))
        self.ids = example_ids(validation.label, n_examples)
        self.signal = validation.model_inputs(self.ids)  # a run on windows: each record's first window
        self.labels = validation.label[self.ids]
        self.class_names = list(validation.class_names)
        self._writer = None
        self._last_epoch = None
        self._last_image_epoch = None

    @property
    def writer(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        return self._writer

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = int(epoch)
        with self.writer.as_default(step=int(epoch)):
            self.write_histograms()
            if self.every > 0 and epoch % self.every == 0:
                self.write_gradcam_image()
                self._last_image_epoch = int(epoch)
        self.writer.flush()

    def on_train_end(self, logs=None):
        if self._last_epoch is not None and self._last_image_epoch != self._last_epoch:
            with self.writer.as_default(step=self._last_epoch):
                self.write_gradcam_image()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def write_histograms(self) -> None:
        """``selection/{p_true,focus}_{kept,dropped}`` of the samples scored so far (default writer/step)."""
        s = self.erts.state.snapshot()
        scored = s["scored_epoch"] >= 0
        groups = {"kept": scored & s["keep"], "dropped": scored & ~s["keep"]}
        with_focus = int(self.erts.state.counters["gradcam"].numpy()) > 0
        for group, mask in groups.items():
            if not mask.any():
                continue
            tf.summary.histogram(f"selection/p_true_{group}", s["p_true"][mask], buckets=20)
            if with_focus:
                tf.summary.histogram(f"selection/focus_{group}", s["focus"][mask], buckets=20)

    def overlay_png(self) -> bytes:
        """The Grad-CAM overlay figure of the fixed validation ECGs, as PNG bytes."""
        from erts_tf import figures

        task = self.erts.task
        maps, probs = gradcam_maps(self.erts.cam_model, self.signal, self.labels, task)
        titles = gradcam_titles(self.ids, self.labels, probs, maps, self.class_names, task)
        epoch = "" if self._last_epoch is None else f" after epoch {self._last_epoch}"
        fig = figures.gradcam_overlay_figure(self.signal[..., self.lead], maps, titles, lead_name=f"lead {self.lead}",
                                           title=f"Grad-CAM of the true class{epoch}")
        return figures.png_bytes(fig)

    def write_gradcam_image(self) -> None:
        """Writes ``gradcam/validation`` (default writer/step)."""
        image = tf.image.decode_png(self.overlay_png(), channels=3)[None]
        tf.summary.image("gradcam/validation", image)
