"""One training run: data -> model -> selection -> fit -> best weights -> test -> summary.

``run(config)`` is what ``python -m erts_tf.train`` calls; tests and
benchmarks call it directly. Everything is written into ``config.output_dir``:
``config.json``, ``logs/`` (TensorBoard), ``checkpoints/``, ``progress.json``,
``best.weights.h5``, ``audit.csv``, ``model.keras``, ``summary.json``. The
summary's validation and test metrics are those of the most probable class and,
in ``tuned``, those at the operating point chosen on validation (single-label:
per-class log-probability offsets, ``metrics.macro_f1_optimal_offsets``;
multi-label: per-class thresholds, ``metrics.f1_optimal_thresholds``). The
bootstrap evaluation and the report that ``--report`` asks for are the
``train`` command's (``erts_tf.train``), after ``run`` returns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from erts_tf import inference, metrics, models, run_data, run_folder
from erts_tf.data import allocator, augment, pipeline
from erts_tf.selection.policy_config import PolicyConfig
from erts_tf.selection.schedule import Schedule, revision_start
from erts_tf.training import callbacks as cbs
from erts_tf.training import distribute, lr_schedule
from erts_tf.training.config import RunConfig
from erts_tf.training.losses import class_weights_conflict, explicit_class_weights
from erts_tf.training import task as task_lib
from erts_tf.training.model import ERTSModel, SelectionConfig
from erts_tf.training.tensorboard_extras import TensorBoardExtras
from erts_tf.training.weight_average import AdamW, SwapAveragedWeights

log = logging.getLogger(__name__)


class RunError(Exception):
    """A run cannot start as configured (message is for the user)."""


@dataclasses.dataclass
class Data:
    train: pipeline.SplitArrays
    validation: pipeline.SplitArrays
    test: pipeline.SplitArrays


def load_data(config: RunConfig) -> Data:
    """Prepares the dataset (building it if needed) and opens the three splits on ``config.data_backend``
    (``run_data``: decoded into memory, or read from disk record by record; with ``--cv_folds``, one fold's)."""
    try:
        builder = run_data.prepare_builder(config)
        return Data(*run_data.load_splits(builder, config))
    except run_data.DataError as error:
        raise RunError(str(error)) from error


def _check_output_dir(config: RunConfig) -> None:
    """``RunError`` unless the run may start in ``config.output_dir``, a folder that exists (the lock or the
    worker's scratch folder made it); clears the folder's run for ``--overwrite``."""
    out = config.output_dir
    finished = os.path.exists(run_folder.path(out, run_folder.SUMMARY))
    started = os.path.exists(run_folder.path(out, run_folder.PROGRESS))
    if config.overwrite and any(name != run_folder.LOCK for name in os.listdir(out)):  # the lock is this run's
        if not run_folder.is_run_folder(out):
            raise RunError(f"--overwrite: {out} is not an erts-tf run folder (no {', '.join(run_folder.MARKERS)}); "
                           "refusing to delete anything in it")
        run_folder.remove_run_outputs(out)
    elif config.resume and not started:
        raise RunError(f"--resume: {out} holds no unfinished run (no {run_folder.PROGRESS})")
    elif config.resume and finished:
        raise RunError(f"--resume: the run in {out} already finished ({run_folder.SUMMARY} exists)")
    elif config.resume:
        _check_resume_matches(config)
    elif not config.resume and (finished or started):
        state = "a finished" if finished else "an unfinished"
        raise RunError(f"{out} holds {state} run; pass --resume to continue it or --overwrite to replace it")


# Settings a resumed run may change: where things are, how they are read (both data backends give the
# same batches), how much is printed or reported. Every other setting changes a decision or the result,
# and must equal the original run's.
_RESUME_FREE = ("output_dir", "data_dir", "manual_dir", "data_backend", "malloc_arena_max", "resume", "overwrite", "verbose", "verbosity",
                "report", "tensorboard_images_every")


def _check_resume_matches(config: RunConfig) -> None:
    saved = run_folder.read_config_json(config.output_dir)
    current = config.to_json()
    # a setting newer than the run's config.json had its default value there
    defaults = RunConfig(output_dir=config.output_dir).to_json()
    changed = [f"--{k}={current[k]} (run has {saved.get(k, defaults[k])})" for k in current
               if k not in _RESUME_FREE and saved.get(k, defaults[k]) != current[k]]
    if changed:
        raise RunError(f"--resume: {config.output_dir} was trained with other settings: {', '.join(changed)}")


def _record_config(config: RunConfig, initial_epoch: int) -> None:
    """Writes ``config.json`` for a new run; a resume keeps the original and appends to ``resumes.json``."""
    out = config.output_dir
    if not config.resume:
        run_folder.write_json(out, run_folder.CONFIG, config.to_json())
        return
    resumes = run_folder.read_json(out, run_folder.RESUMES) or []
    resumes.append({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "from_epoch": initial_epoch,
                    "changed": {k: v for k, v in config.to_json().items() if k in _RESUME_FREE}})
    run_folder.write_json(out, run_folder.RESUMES, resumes)


def check_data_fits_model(data: Data, input_shape, n_classes: int) -> None:
    """A clear error when a dataset does not match a model's input shape or class count."""
    if tuple(data.train.input_shape) != tuple(input_shape):
        raise RunError(f"signal shape {data.train.input_shape} (time, leads) of the dataset does not match "
                       f"the model's input {tuple(input_shape)}")
    if len(data.train.class_names) != n_classes:
        raise RunError(f"the dataset has {len(data.train.class_names)} classes, the model expects {n_classes}")
    if np.ndim(data.train.label) == 2 and data.train.label.shape[1] != n_classes:
        raise RunError(f"the multi-hot labels have {data.train.label.shape[1]} columns, the model has {n_classes} outputs")
    for split in (data.validation, data.test):
        if split.input_shape != data.train.input_shape:
            raise RunError(f"validation/test signal shape {split.input_shape} differs from train {data.train.input_shape}")


def build_model(config: RunConfig, data: Data) -> ERTSModel:
    """Backbone + ERTSModel + compiled AdamW for ``data`` (keeping a moving average of the weights
    with ``--ema_momentum``)."""
    n_classes = len(data.train.class_names)
    backbone = models.build(config.model, data.train.input_shape, n_classes)
    check_data_fits_model(data, backbone.inputs[0].shape[1:], int(backbone.outputs[0].shape[-1]))
    task = task_of(config, data)
    plain = config.loss == "plain" or (config.reference_loss_split and config.mode == "full")
    conflict = config.class_weights and class_weights_conflict(config.loss, task.name, config.reference_loss_split)
    if conflict:
        raise RunError(conflict)
    if plain:
        weights = np.ones(n_classes, np.float32)
    elif config.class_weights:
        try:
            weights = explicit_class_weights(config.class_weights, data.train.class_names)
        except ValueError as error:
            raise RunError(str(error)) from None
    else:
        weights = task.class_weights(data.train.label, n_classes, config.cb_beta, config.cb_max_ratio)
    selection = SelectionConfig(
        mode=config.mode,
        level=config.level,
        policy=policy_config(config, n_classes),
        focus_score=config.focus_score,
        seed=config.seed,
    )
    model = ERTSModel(backbone, models.get(config.model).target_layer, data.train.n, weights, selection,
                      skip_nonfinite=config.skip_nonfinite, window_aggregate=config.window_aggregate, task=task)
    average = {"use_ema": True, "ema_momentum": config.ema_momentum} if config.ema_momentum > 0 else {}
    optimizer = AdamW(learning_rate=config.lr, weight_decay=config.weight_decay, **average)
    model.compile(optimizer=optimizer, jit_compile=config.jit_compile)
    optimizer.build(backbone.trainable_variables)
    return model


def task_of(config: RunConfig, data: Data | None = None) -> task_lib.SingleLabel:
    """The run's ``--task``; ``RunError`` when the data's labels are not its kind (``(n,)`` / ``(n, C)``)."""
    task = task_lib.get(config.task)
    if data is not None and task_lib.of_labels(data.train.label) is not task:
        raise RunError(f"--task={config.task}: the training labels have shape {np.shape(data.train.label)} "
                       f"({'multi-hot: --task=multi' if np.ndim(data.train.label) == 2 else 'class indices: --task=single'})")
    return task


def policy_config(config: RunConfig, n_classes: int) -> PolicyConfig:
    """The policies' hyper-parameters from a run's settings."""
    shared = [f.name for f in dataclasses.fields(PolicyConfig) if f.name != "n_classes"]
    return PolicyConfig(n_classes=n_classes, **{name: getattr(config, name) for name in shared})


def schedule_of(config: RunConfig) -> Schedule:
    """The run's epoch schedule (warm-up, focus start, revision or annealing)."""
    return Schedule(config.warm_up_epochs, config.cam_start_epoch,
                    revision_start(config.start_revision, config.epochs, config.anneal_frac))


def learning_rate_callback(config: RunConfig) -> keras.callbacks.LearningRateScheduler:
    return keras.callbacks.LearningRateScheduler(lambda epoch: lr_schedule.learning_rate(
        config.lr_schedule, config.lr, epoch, config.epochs, config.lr_decay, config.lr_warmup_epochs))


def make_strategy(config: RunConfig) -> tf.distribute.Strategy:
    """The ``--strategy`` of a run (``RunError`` for a strategy it cannot use)."""
    try:
        strategy = distribute.make(config.strategy)
    except ValueError as error:
        raise RunError(str(error)) from error
    if config.strategy != "default" and (config.level != "epoch" or config.skip_nonfinite):
        raise RunError(f"--strategy={config.strategy} supports --level=epoch without --skip_nonfinite only")
    return strategy


def run(config: RunConfig, data: Data | None = None, extra_callbacks=None,
        strategy: tf.distribute.Strategy | None = None) -> dict:
    """Trains, restores the best validation weights, scores the validation and test splits, writes the
    run folder; returns the summary.

    ``extra_callbacks``: Keras callbacks run after the run's own ones in every epoch (benchmarks'
    per-epoch measurements); they see the ``ERTSModel`` as ``callback.model``.
    ``strategy``: the run's ``make_strategy(config)`` if the caller needs it afterwards
    (made here otherwise).

    The run holds ``config.output_dir``'s lock (``run_folder.lock``) from its first check of the
    folder to its last write: a second run into the same folder is a ``RunError``, and nothing in
    the folder is touched by it.

    Under ``--strategy=multiworker`` only the chief writes ``config.output_dir``; every other
    worker writes into a scratch folder (a copy of the run when resuming) that it removes at
    the end. A resumed multi-worker run therefore needs ``output_dir`` on a shared filesystem.
    """
    strategy = make_strategy(config) if strategy is None else strategy
    if not distribute.is_chief(strategy):
        return _run_as_worker(config, data, strategy)
    if os.path.exists(config.output_dir) and not os.path.isdir(config.output_dir):
        raise RunError(f"--output_dir={config.output_dir} is a file, not a folder")
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(run_folder.lock(config.output_dir))
        except run_folder.RunFolderBusy as error:
            raise RunError(f"{error}, or choose another --output_dir") from error
        return _run(config, data, strategy, extra_callbacks)


def _run_as_worker(config: RunConfig, data: Data | None, strategy) -> dict:
    scratch = tempfile.mkdtemp(prefix="erts_tf_worker_")
    try:
        if config.resume:
            shutil.copytree(config.output_dir, scratch, dirs_exist_ok=True)
        worker_config = dataclasses.replace(config, output_dir=scratch, overwrite=False)
        return _run(worker_config, data, strategy)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(config: RunConfig, data: Data | None, strategy: tf.distribute.Strategy, extra_callbacks=None) -> dict:
    start = time.perf_counter()
    _check_output_dir(config)
    out = config.output_dir
    tf.config.experimental.enable_op_determinism()
    allocator.apply(config.data_backend, config.malloc_arena_max)  # before the data's threads allocate
    data = data or load_data(config)
    # Seeded after the data are ready: building a dataset on the first run draws from the global generators,
    # and a run must train the same whether it built its dataset or found it built.
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_model(config, data)
    if strategy.num_replicas_in_sync > 1:
        distribute.synchronize_batch_norm(model.backbone)
    state = model.state
    schedule = schedule_of(config)

    checkpoint = tf.train.Checkpoint(backbone=model.backbone, optimizer=model.optimizer, state=state)
    manager = tf.train.CheckpointManager(checkpoint, run_folder.path(out, run_folder.CHECKPOINTS), max_to_keep=2)
    sharded = strategy.num_replicas_in_sync > 1
    ledger = cbs.CostLedger(model, lambda e: cbs.effective_phase(config.mode, schedule, e),
                            sum_reads=(lambda reads: distribute.sum_over_workers(strategy, reads)) if sharded else None)
    best = cbs.BestWeights(model, run_folder.path(out, run_folder.BEST_WEIGHTS), monitor=model.task.monitor)
    initial_epoch = 0
    if config.resume:
        progress = run_folder.read_json(out, run_folder.PROGRESS)
        # progress.json is written after the checkpoint: restore the checkpoint it names.
        finished = progress["finished_epoch"]
        restored = checkpoint.restore(run_folder.path(out, run_folder.CHECKPOINTS, f"ckpt-{finished}"))
        restored.assert_existing_objects_matched()
        initial_epoch = finished + 1
        ledger.history = progress["ledger"][:initial_epoch]
        best.best, best.best_epoch = progress["best"]["value"], progress["best"]["epoch"]
        log.info("resuming %s at epoch %d", out, initial_epoch)
    _record_config(config, initial_epoch)

    def rescore(ids, cam, epoch):
        model.score_dataset(pipeline.rescore_dataset(data.train, config.batch_size, ids, config.seed, epoch), cam=cam)

    audit = cbs.AuditLog(run_folder.path(out, run_folder.AUDIT), model, data.train.class_names,
                         data.train.extras, data.train.extra_names, labels=data.train.label)
    audit.initial_epoch = initial_epoch
    callbacks = [
        ledger,
        cbs.SelectionCallback(model, schedule, config.epochs, rescore, config.rescore_every, config.always_cam,
                              labels=data.train.label, focus_every=config.focus_every),
        learning_rate_callback(config),
        audit,
        best,
        keras.callbacks.TensorBoard(run_folder.path(out, run_folder.LOGS), write_graph=False),
        TensorBoardExtras(model, run_folder.path(out, run_folder.LOGS), data.validation,
                          every=config.tensorboard_images_every),
        cbs.EpochCheckpoint(manager, out, ledger, best),
    ]
    callbacks[-1:-1] = list(extra_callbacks or [])  # before the checkpoint, after the run's own
    if config.ema_momentum > 0:  # first: every other callback's on_epoch_end sees the averaged weights
        callbacks.insert(0, SwapAveragedWeights(resumed=initial_epoch > 0))
    if config.early_stop_patience > 0:
        callbacks.insert(-1, keras.callbacks.EarlyStopping(model.task.monitor, patience=config.early_stop_patience,
                                                           mode="max"))
    read_counter = state.counters["samples_read"]
    pipeline_mask = state.keep if config.level == "epoch" else None  # batch level reads everything
    streams = {}  # shard -> its pipeline.TrainStream, built once per run

    def train_data(epoch, shard=None):
        if shard not in streams:
            streams[shard] = pipeline.TrainStream(data.train, pipeline_mask, config.batch_size, config.seed,
                                                  read_counter, augment.parse(config.augment), shard)
        return streams[shard].epoch_dataset(epoch)

    def sharded_train_data(epoch):
        """Each worker reads only its replicas' parts of the global batches (``pipeline.Shard``)."""
        return strategy.distribute_datasets_from_function(
            lambda context: train_data(epoch, distribute.worker_shard(context)))

    model.fit(
        sharded_train_data if sharded else train_data,
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        validation_data=pipeline.eval_dataset(data.validation, config.batch_size),
        callbacks=callbacks,
        verbose=config.verbose,
    )
    weights_epoch = ledger.history[-1]["epoch"] if ledger.history else -1
    if config.keep_weights == "best" and os.path.exists(best.path):
        model.backbone.load_weights(best.path)
        weights_epoch = best.best_epoch
    distribute.synchronize_batch_norm(model.backbone, False)  # the saved model is a plain one-device model
    model.backbone.save(run_folder.path(out, run_folder.MODEL))

    def probs(split: pipeline.SplitArrays):
        return inference.split_probs(model.backbone, split, config.batch_size, model.task.activation)

    validation_probs, test_probs = probs(data.validation), probs(data.test)
    if model.task.name == "multi":  # F1 thresholds per class chosen on validation, never on test
        thresholds = metrics.f1_optimal_thresholds(data.validation.label, validation_probs)
        validation_scores, test_scores = (
            metrics.multilabel_metrics(split.label, p, split.class_names, tuned_thresholds=thresholds)
            for split, p in ((data.validation, validation_probs), (data.test, test_probs)))
    else:  # the operating point (per-class log-probability offsets) chosen on validation, never on test
        offsets = metrics.macro_f1_optimal_offsets(data.validation.label, validation_probs)
        validation_scores, test_scores = (
            metrics.classification_metrics(split.label, p, split.class_names, tuned_offsets=offsets)
            for split, p in ((data.validation, validation_probs), (data.test, test_probs)))

    summary = {
        "config": config.to_json(),
        "dataset": {"train": data.train.n, "validation": data.validation.n, "test": data.test.n,
                    "classes": data.train.class_names, "input_shape": list(data.train.input_shape)},
        "distribution": distribute.describe(config.strategy, strategy),
        "best_epoch": best.best_epoch,
        "weights_epoch": weights_epoch,
        "task": model.task.name,
        "label_feature": config.label_feature or "label",
        "validation": validation_scores,
        "test": test_scores,
        "cost": ledger.totals(),
        "epochs": ledger.history,
        "wall_clock_s": time.perf_counter() - start,
    }
    run_folder.write_json(out, run_folder.SUMMARY, summary)
    return summary


def result_table(summary: dict) -> str:
    """A plain-text table of a run's results."""
    cost = summary["cost"]
    test = summary["test"]
    multi = summary.get("task") == "multi"
    lines = [
        f"{'metric':<28}{'value':>12}",
        *([f"{'macro-AUC validation':<28}{summary['validation']['macro_auroc']:>12.4f}",
           f"{'macro-AUC test':<28}{test['macro_auroc']:>12.4f}",
           *(f"{'  AUC test ' + name:<28}{_num(v):>12}" for name, v in test["per_class_auroc"].items()),
           f"{'macro-F1 test (val. thr.)':<28}{test['tuned']['macro_f1']:>12.4f}"] if multi else []),
        f"{'macro-F1 validation':<28}{summary['validation']['macro_f1']:>12.4f}",
        f"{'macro-F1 test' + (' (0.5)' if multi else ''):<28}{test['macro_f1']:>12.4f}",
        *([] if multi else [f"{'  F1 test ' + name:<28}{v['f1']:>12.4f}" for name, v in test["per_class"].items()]),
        *([f"{'macro-F1 test (val. offs.)':<28}{test['tuned']['macro_f1']:>12.4f}"] if "tuned" in test and not multi
          else []),
        f"{'best epoch':<28}{summary['best_epoch']:>12d}",
        f"{'weights of epoch':<28}{summary['weights_epoch']:>12d}",
        f"{'effective epochs':<28}{cost['effective_epochs']:>12.2f}",
        f"{'total-work ratio vs full':<28}{cost['total_work_ratio']:>12.3f}",
        f"{'work saved vs full':<28}{1.0 - cost['total_work_ratio']:>12.1%}",
        f"{'train wall-clock (s)':<28}{cost['train_s']:>12.1f}",
        f"{'run wall-clock (s)':<28}{summary['wall_clock_s']:>12.1f}",
    ]
    return "\n".join(lines)


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
