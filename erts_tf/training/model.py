"""``ERTSModel``: one ``train_step`` for every selection mode and level.

The model wraps a backbone (any functional or Sequential Keras model mapping
``(batch, time, leads)`` to logits) and an auxiliary view of it,
``cam_model: x -> (target-layer activations, logits)``, that shares its layers.

Two selection levels:

* ``epoch``: the input pipeline already dropped the samples not selected
  for this epoch. One training forward under one tape gives the loss, the
  weight gradients, and, when focus scores are needed, the Grad-CAM maps from
  one extra partial backward (true-class logits -> target layer). Scores of
  the samples seen are scattered into the ``SelectionState``; the next
  epoch's keep-mask is decided from them (``SelectionCallback``).
* ``batch`` (the reference): in selection epochs every sample of the batch is
  first scored in inference mode (no batch-norm update, no dropout), the
  policy masks the batch, and the training forward/backward runs on the kept
  samples only (a batch with none kept takes no optimizer step).
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import tensorflow as tf

from erts_tf.data import windows as windows_lib
from erts_tf.explain import focus as focus_lib
from erts_tf.explain.gradcam import cam_view, gradcam_over_time
from erts_tf.selection import policies
from erts_tf.selection.state import SelectionState
from erts_tf.training import task as task_lib
from erts_tf.training.macro_f1 import PresentClassesMacroF1
from erts_tf.training.selection_config import SelectionConfig, StepPlan


def _length_hidden(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset``, its batch count unknown to Keras (the batches and any cardinality assertion unchanged);
    the caller passes the count as ``steps_per_epoch`` (``validation_steps``).

    Given a dataset of known length, Keras's epoch iterator starts the iterator of the next epoch as
    soon as one ends; with one ``fit`` call per epoch that iterator is never used, and starting one
    costs 0.03-0.07 s (the pipeline's functions are instantiated), a fixed cost of every epoch that
    does not shrink with the kept fraction. With a step count and no known length Keras makes one
    iterator and takes exactly that many batches (without one it would read to the end and call the
    step once more on the exhausted iterator).
    """
    return dataset.filter(tf.autograph.experimental.do_not_convert(lambda *batch: True))


def switches_cam(selection: SelectionConfig, replicas: int) -> bool:
    """Whether the model compiles ONE epoch-level train step with its Grad-CAM part behind ``cam_switch``.

    Epoch level, focus modes: Grad-CAM is on in some epochs and off in others; one step for both rather
    than one per setting saves tracing (each step is traced twice, for the full and the last, partial
    batch: ~5 s of a run on the PTB-XL subset, a tenth of erts_infobatch's training time there). Not
    under a multi-replica strategy (``replicas > 1``): the Grad-CAM backward may hold a collective
    (synchronized batch norm), which a strategy does not allow inside a conditional.
    """
    return selection.level == "epoch" and selection.mode in policies.FOCUS_MODES and replicas == 1


class ERTSModel(keras.Model):
    """A backbone trained with per-sample selection.

    Args:
      backbone: Keras model ``(batch, time, leads) -> (batch, n_classes)`` logits.
      target_layer: name of the Grad-CAM target layer inside ``backbone``.
      n_train: number of training samples (sample ids are ``0..n_train-1``).
      class_weights: ``(n_classes,)`` loss weight per class (multi-label: the positive weight per class).
      selection: the ``SelectionConfig``.
      skip_nonfinite: skip (and count) batches whose loss or gradients are not
        finite instead of stopping with an error.
      window_aggregate: how evaluation and re-scoring combine the windows of a record
        (``windows.AGGREGATES``), when their batches hold windows (``pipeline.eval_dataset``
        of a split with a window): ``((windows (batch, k, window, leads), valid (batch, k)), label, id)``.
        Training batches hold one crop per record and need nothing of this.
      task: the ``task.SingleLabel`` (softmax, labels ``(batch,)``) or ``task.MultiLabel`` (sigmoid, labels
        ``(batch, n_classes)`` multi-hot): the loss, the confidence, "correct" and the Grad-CAM target.
    """

    def __init__(self, backbone, target_layer, n_train, class_weights, selection=SelectionConfig(),
                 skip_nonfinite=False, window_aggregate="mean", task=task_lib.SINGLE, **kwargs):
        super().__init__(name=kwargs.pop("name", "erts"), **kwargs)
        self.backbone = backbone
        self.target_layer = target_layer
        self.cam_model = cam_view(backbone, target_layer)
        self.n_classes = int(backbone.outputs[0].shape[-1])
        self.class_weights = tf.constant(np.asarray(class_weights, np.float32))
        self.selection = selection
        self.skip_nonfinite = bool(skip_nonfinite)
        self.window_aggregate = window_aggregate
        self.task = task
        self.state = SelectionState(n_train, label_shape=task.label_shape(self.n_classes))
        self.focus_fn = focus_lib.get(selection.focus_score)
        self.plan = StepPlan()
        self.cam_switch = tf.Variable(False, trainable=False, name="cam_switch")
        self.switched_cam = switches_cam(selection, tf.distribute.get_strategy().num_replicas_in_sync)
        self._compiled_plan = self.plan  # the plan the current train function was compiled for
        self._train_functions = {}  # compiled plan -> compiled train function
        self._score_steps = {}  # cam -> compiled scoring step of score_dataset
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.f1 = PresentClassesMacroF1(threshold=task.f1_threshold)
        # F1Score creates its variables at its first update; do that here (in the strategy scope the
        # model is built in), never inside a replica's train step.
        self.f1.update_state(tf.zeros([1, self.n_classes]), tf.zeros([1, self.n_classes]))
        self.f1.reset_state()
        # multi-label: the macro AUROC (the PTB-XL benchmark's metric), which selects the best weights
        self.auc = keras.metrics.AUC(multi_label=True, num_labels=self.n_classes, name="macro_auc") \
            if task.name == "multi" else None

    # -- Keras plumbing -----------------------------------------------------------------------
    def call(self, inputs, training=False):
        return self.backbone(inputs, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker, self.f1] + ([self.auc] if self.auc is not None else [])

    def compile(self, *args, **kwargs):
        self._train_functions = {}  # compiled against the previous optimizer
        super().compile(*args, **kwargs)

    def set_plan(self, plan: StepPlan) -> None:
        """Sets what the next train steps do. Each plan's compiled train function is kept, so going
        back to a plan seen before does not trace the step again; with ``switched_cam`` an epoch-level
        plan's ``cam`` only sets ``cam_switch`` (one compiled step for focus on and off)."""
        self.plan = plan
        self.cam_switch.assign(plan.cam)
        compiled = StepPlan(batch_select=False) if self.switched_cam and not plan.batch_select else plan
        if compiled == self._compiled_plan:
            return
        if self.train_function is not None:
            self._train_functions[self._compiled_plan] = self.train_function
        self._compiled_plan = compiled
        self.train_function = self._train_functions.get(compiled)
        if self.train_function is None:
            self.make_train_function(force=True)

    # -- pieces of the step -------------------------------------------------------------------
    def _update_metrics(self, loss, labels, logits):
        self.loss_tracker.update_state(loss)
        targets, probs = self.task.targets(labels, self.n_classes), self.task.probabilities(logits)
        self.f1.update_state(targets, probs)
        if self.auc is not None:
            self.auc.update_state(targets, probs)

    def _logs(self):
        """The metric results, as a step returns them.

        Under ``MultiWorkerMirroredStrategy`` Keras 3.15 reduces a step's outputs with a MEAN over
        axis 0, which a scalar lacks; there each result is returned with shape ``(1,)``.
        """
        logs = {m.name: m.result() for m in self.metrics}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def _focus(self, tape, activations, cam_target):
        """Focus ``(batch,)`` from the true-class Grad-CAM; one partial backward on ``tape``.

        ``cam_target`` is ``task.cam_target`` computed inside ``tape``.
        """
        grads = tape.gradient(cam_target, activations)
        return self.focus_fn(gradcam_over_time(activations, grads))

    def _loss(self, labels, logits, sample_weights):
        """``(loss, reported)``: the loss to differentiate and this replica's mean loss to report.

        The loss is the batch mean of ``sample_weights * per-sample loss`` (``(batch,)`` weights from
        the selection decision; InfoBatch's form, so that weights ``1/(1 - r)`` on a random share
        ``1 - r`` of a group keep its expected contribution). Under a multi-replica strategy the optimizer sums the replicas' gradients, so each
        replica's loss is its sum over its samples divided by the GLOBAL batch size: the sum is
        then the gradient of the global batch's mean, as on one device (an empty share adds 0).
        """
        per_sample = self.task.per_sample_loss(labels, logits, self.class_weights) * sample_weights
        regularization = tf.add_n(self.backbone.losses) if self.backbone.losses else 0.0
        replicas = tf.distribute.get_replica_context()
        if replicas is None or replicas.num_replicas_in_sync == 1:
            loss = tf.reduce_mean(per_sample) + regularization
            return loss, loss
        n_local = tf.cast(tf.size(per_sample), tf.float32)
        n_global = replicas.all_reduce(tf.distribute.ReduceOp.SUM, n_local)
        total = tf.reduce_sum(per_sample)
        loss = total / n_global + regularization / replicas.num_replicas_in_sync
        return loss, tf.math.divide_no_nan(total, n_local) + regularization

    def _snapshot_statistics(self):
        """Copies of the non-trainable weights (batch-norm statistics) if skipping is enabled."""
        if not self.skip_nonfinite:
            return None
        return [tf.identity(v.value) for v in self.backbone.non_trainable_variables]

    def _apply(self, loss, grads, ids, statistics=None):
        """Applies ``grads`` if everything is finite; else errors or skips (``skip_nonfinite``).

        A skipped batch also restores ``statistics`` (the non-trainable weights before its
        forward), so batch-norm statistics are not poisoned either.
        """
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None] + [tf.math.is_finite(loss)])
        if not self.skip_nonfinite:
            tf.debugging.Assert(
                finite,
                ["non-finite loss or gradient at epoch", self.state.epoch, "step", self.state.step,
                 "loss", loss, "sample_ids", ids],
                summarize=64,
            )
            # The update waits for the batch: given a dataset of unknown length, Keras calls the step once
            # more on the exhausted iterator, and the parts of an update that do not depend on the batch
            # (the optimizer's iteration count, optimizer_steps) would otherwise run in that failed call.
            with tf.control_dependencies([finite]):
                self.optimizer.apply(grads, self.backbone.trainable_variables)
                self.state.count("optimizer_steps", 1, replicated=True)
            return tf.constant(True)

        def apply():
            self.optimizer.apply(grads, self.backbone.trainable_variables)
            self.state.count("optimizer_steps", 1, replicated=True)
            return tf.constant(True)

        def skip():
            for variable, value in zip(self.backbone.non_trainable_variables, statistics or []):
                variable.assign(value)
            self.state.count("skipped_batches", 1, replicated=True)
            tf.print("skipping batch with non-finite loss/gradient: epoch", self.state.epoch,
                     "step", self.state.step, "sample_ids", ids, summarize=64)
            return tf.constant(False)

        return tf.cond(finite, apply, skip)

    # -- the step -----------------------------------------------------------------------------
    def train_step(self, data):
        signal, labels, ids = data
        labels = tf.cast(labels, tf.int32)
        ids = tf.cast(ids, tf.int32)
        if self.plan.batch_select:
            logs = self._batch_level_step(signal, labels, ids)
        else:
            logs = self._full_batch_step(signal, labels, ids)
        self.state.step.assign_add(1)
        return logs

    def _full_batch_step(self, signal, labels, ids):
        """Trains on every sample of the batch, each with its loss weight from the selection state;
        scores them from the same forward."""
        n = tf.shape(ids)[0]
        statistics = self._snapshot_statistics()
        sample_weights = tf.gather(self.state.weight, ids)
        switched = self.switched_cam
        with tf.GradientTape(persistent=switched or self.plan.cam) as tape:
            activations, logits = self.cam_model(signal, training=True)
            loss, reported = self._loss(labels, logits, sample_weights)
            cam_target = self.task.cam_target(logits, labels)
        grads = tape.gradient(loss, self.backbone.trainable_variables)
        if switched:
            focus = tf.cond(self.cam_switch, lambda: self._focus(tape, activations, cam_target),
                            lambda: tf.zeros([n], tf.float32))
        else:
            focus = self._focus(tape, activations, cam_target) if self.plan.cam else None
        applied = self._apply(loss, grads, ids, statistics)
        p_true, correct = self.task.confidence(labels, logits)

        def record():
            self.state.record_scores(ids, labels, p_true, correct, focus, training=True,
                                     focus_on=self.cam_switch if switched else None)
            self._update_metrics(reported, labels, logits)

        self._if_applied(applied, record)
        self.state.record_backprop(ids, applied)
        self.state.count("forward_train", n)
        self.state.count("backward", n * tf.cast(applied, tf.int32))
        if switched:
            self.state.count("gradcam", n * tf.cast(self.cam_switch, tf.int32))
        elif self.plan.cam:
            self.state.count("gradcam", n)
        return self._logs()

    def _if_applied(self, applied, fn) -> None:
        """Runs ``fn`` (score and metric updates) unless the batch was skipped as non-finite: a skipped
        batch records no scores, so its samples keep their previous state."""
        if not self.skip_nonfinite:
            fn()
            return

        def run():
            fn()
            return tf.constant(True)

        tf.cond(applied, run, lambda: tf.constant(False))

    def score(self, signal, labels, training=False, cam=True):
        """Scores a batch: ``(p_true, correct, focus)``, each ``(batch,)``; focus is None if not ``cam``.

        ``signal`` ``(batch, time, leads)``, or ``(windows, valid)`` of an evaluation batch of windows
        (``_score_windows``)."""
        if isinstance(signal, tuple):
            return self._score_windows(*signal, labels, cam)
        with tf.GradientTape() as tape:  # records via the weights; only logits -> activations is replayed
            activations, logits = self.cam_model(signal, training=training)
            cam_target = self.task.cam_target(logits, labels)
        p_true, correct = self.task.confidence(labels, logits)
        focus = self._focus(tape, activations, cam_target) if cam else None
        return p_true, correct, focus

    def _score_windows(self, windows, valid, labels, cam):
        """``score`` of records from all their windows ``(batch, k, window, leads)`` (``valid`` ``(batch, k)``):
        ``p_true`` and ``correct`` of the aggregated probabilities (``window_aggregate``); focus, the mean
        over the record's windows of each window's true-class Grad-CAM focus."""
        shape = tf.shape(windows)
        k = shape[1]
        with tf.GradientTape() as tape:
            activations, logits = self.cam_model(tf.reshape(windows, tf.concat([[-1], shape[2:]], 0)), training=False)
            cam_target = self.task.cam_target(logits, tf.repeat(labels, k, axis=0))
        probs = windows_lib.aggregate(tf.reshape(self.task.probabilities(logits), [shape[0], k, -1]),
                                      valid, self.window_aggregate)
        p_true, correct = self.task.confidence(labels, self.task.logits_of(probs))
        focus = None
        if cam:
            focus = windows_lib.aggregate_valid(tf.reshape(self._focus(tape, activations, cam_target), [shape[0], k]),
                                                valid)
        return p_true, correct, focus

    def _batch_level_step(self, signal, labels, ids):
        """Reference batch-level selection: score all in inference mode, train on the kept ones."""
        n = tf.shape(ids)[0]
        p_true, correct, focus = self.score(signal, labels, training=False, cam=self.plan.cam)
        self.state.count("forward_score", n)
        if self.plan.cam:
            self.state.count("gradcam", n)
        has_focus = tf.fill(tf.shape(p_true), focus is not None)
        scores = policies.Scores.of(p_true, focus if focus is not None else tf.zeros_like(p_true), labels, correct,
                                    has_focus=has_focus)
        rng = tf.stack([tf.constant(self.selection.seed, tf.int64), self.state.epoch * (2**24) + self.state.step])
        decision = policies.decide(self.selection.mode, scores, self.state.epoch, rng,
                                   self.selection.policy, cam_active=self.plan.cam_active)
        self.state.record_scores(ids, labels, p_true, correct, focus, training=False)
        self.state.record_decision(ids, decision.keep, decision.reason, decision.weights())
        kept_ids = tf.boolean_mask(ids, decision.keep)
        n_kept = tf.shape(kept_ids)[0]

        def train_kept():
            x = tf.boolean_mask(signal, decision.keep)
            y = tf.boolean_mask(labels, decision.keep)
            w = tf.boolean_mask(decision.weights(), decision.keep)
            statistics = self._snapshot_statistics()
            with tf.GradientTape() as tape:
                logits = self.backbone(x, training=True)
                loss, reported = self._loss(y, logits, w)
            grads = tape.gradient(loss, self.backbone.trainable_variables)
            applied = self._apply(loss, grads, kept_ids, statistics)
            self._if_applied(applied, lambda: self._update_metrics(reported, y, logits))
            return applied

        applied = tf.cond(n_kept > 0, train_kept, lambda: tf.constant(False))
        self.state.record_backprop(kept_ids, applied)
        self.state.count("forward_train", n_kept)
        self.state.count("backward", n_kept * tf.cast(applied, tf.int32))
        return self._logs()

    def score_dataset(self, dataset: tf.data.Dataset, cam: bool) -> None:
        """Scores every ``(signal, label, sample_id)`` batch of ``dataset`` in inference mode
        (no weight update) and records the scores; counted as read, forward_score and gradcam.
        The compiled scoring step is built once per ``cam`` value and kept."""
        step = self._score_steps.get(cam)
        if step is None:
            step = self._score_steps[cam] = tf.function(lambda *batch: self._score_step(*batch, cam=cam),
                                                        reduce_retracing=True)
        for signal, labels, ids in dataset:
            step(signal, labels, ids)

    def _score_step(self, signal, labels, ids, cam: bool) -> None:
        labels = tf.cast(labels, tf.int32)
        p_true, correct, focus = self.score(signal, labels, training=False, cam=cam)
        self.state.record_scores(ids, labels, p_true, correct, focus, training=False)
        n = tf.shape(ids)[0]
        # a forward (and a Grad-CAM) is counted per window the backbone saw; a read per record
        passes = tf.reduce_sum(tf.cast(signal[1], tf.int32)) if isinstance(signal, tuple) else n
        self.state.count("samples_read", n)
        self.state.count("forward_score", passes)
        if cam:
            self.state.count("gradcam", passes)

    def fit(self, x=None, epochs=1, initial_epoch=0, callbacks=None, verbose="auto", **kwargs):
        """Keras ``fit``, run as one ``fit`` call per epoch.

        Keras learns the number of steps of a dataset of unknown length from
        its first epoch and caps later epochs to it; a keep-mask that grows
        again (revision, resume) would then silently train on part of the
        data. One call per epoch avoids that. Callbacks still see one
        ``on_train_begin``/``on_train_end`` for the whole run.

        Args:
          x: a ``tf.data.Dataset`` of ``(signal, label, sample_id)``, or a
            callable ``epoch -> dataset`` (a fresh, epoch-seeded order); under a
            strategy also a ``tf.distribute.DistributedDataset`` made from a
            function (each worker's replicas' parts of the global batches).
          Other arguments as ``keras.Model.fit``.
        """
        callback_list = _RunCallbackList(
            callbacks, add_history=True, add_progbar=verbose != 0, verbose=1 if verbose == "auto" else verbose,
            epochs=epochs, steps=None, model=self,
        )
        callback_list.run_begin()
        validation = kwargs.get("validation_data")
        validation_steps = int(validation.cardinality()) if isinstance(validation, tf.data.Dataset) else -1
        if (validation_steps >= 0 and kwargs.get("validation_steps") is None
                and self.distribute_strategy.num_replicas_in_sync == 1):
            # one iterator per evaluation, as in training
            kwargs.update(validation_data=_length_hidden(validation), validation_steps=validation_steps)
        for epoch in range(initial_epoch, epochs):
            callback_list.prepare_epoch(epoch)  # the keep-mask is decided before the pipeline is built
            dataset = x(epoch) if callable(x) else x
            steps = self._steps_of(dataset)
            distributed = isinstance(dataset, tf.distribute.DistributedDataset)
            # The progress bar's target: the batches this epoch actually holds (None: unknown).
            callback_list.set_params({**callback_list.params, "steps": steps if steps >= 0 else None})
            if not distributed and steps >= 0:
                dataset = _length_hidden(dataset)
            with warnings.catch_warnings():  # each call runs its dataset to the end, by design
                warnings.filterwarnings("ignore", message=".*ran out of data.*")
                warnings.filterwarnings("ignore", message=".*shuffle=True.*")
                super().fit(dataset, epochs=epoch + 1, initial_epoch=epoch, callbacks=callback_list,
                            verbose=verbose, steps_per_epoch=steps if steps >= 0 else None, **kwargs)
            if self.stop_training:
                break
        callback_list.run_end()
        return self.history

    def _steps_of(self, dataset) -> int:
        """Training steps in ``dataset`` (-1: unknown). A dataset distributed from a function holds one
        element per local replica and step (``pipeline.Shard``)."""
        if isinstance(dataset, tf.distribute.DistributedDataset):
            elements = int(dataset.cardinality)
            return -(-elements // len(self.distribute_strategy.extended.worker_devices)) if elements >= 0 else -1
        return int(dataset.cardinality())

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras, under a strategy, reads the first batch of every ``fit``/``evaluate`` call to build
        the model (and fails to reduce it under ``MultiWorkerMirroredStrategy``). Backbone and
        metrics are built at construction; once the optimizer is built there is nothing left to build."""
        if self.optimizer is not None and self.optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def test_step(self, data):
        """Validation loss and macro-F1; a batch of windows is scored per record, its windows' probabilities
        aggregated (``window_aggregate``; the loss is the task's loss of the aggregated row: single-label, the
        cross-entropy of the renormalised row; multi-label, the BCE of the aggregated sigmoid outputs)."""
        signal, labels, _ = data
        labels = tf.cast(labels, tf.int32)
        if isinstance(signal, tuple):
            logits = self.task.logits_of(windows_lib.record_probs(
                lambda x: self.task.probabilities(self.backbone(x, training=False)), *signal,
                self.window_aggregate))
        else:
            logits = self.backbone(signal, training=False)
        per_sample = self.task.per_sample_loss(labels, logits, self.class_weights)
        # a replica's share of a last, short batch can be empty under a strategy
        loss = tf.math.divide_no_nan(tf.reduce_sum(per_sample), tf.cast(tf.size(per_sample), tf.float32))
        self._update_metrics(loss, labels, logits)
        return self._logs()

    def predict_step(self, data):
        signal = data[0] if isinstance(data, (tuple, list)) else data
        return self.task.probabilities(self.backbone(signal, training=False))


class _RunCallbackList(keras.callbacks.CallbackList):
    """A CallbackList whose train begin/end fire once per run, not once per ``fit`` call."""

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def run_begin(self):
        super().on_train_begin()

    def prepare_epoch(self, epoch):
        """Calls ``on_epoch_prepare(epoch)`` of every callback that has one, in order, before the
        epoch's dataset is built (selection decides the keep-mask there)."""
        for callback in self.callbacks:
            prepare = getattr(callback, "on_epoch_prepare", None)
            if prepare is not None:
                prepare(epoch)

    def run_end(self):
        super().on_train_end()
