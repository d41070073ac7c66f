"""Every command-line flag of ``erts_tf.train``, defined and validated here once.

``run_config()`` turns the parsed flags into a ``RunConfig``. Bad values fail
at parse time with a one-line message and exit code 2 (see ``parse``).
"""

from __future__ import annotations

import os

from absl import flags

from erts_tf import cli, models
from erts_tf.data import augment, registry, windows
from erts_tf.data.pipeline import BACKENDS
from erts_tf.explain import focus
from erts_tf.selection.policies import MODES
from erts_tf.training import task as task_lib
from erts_tf.training.losses import class_weights_conflict, parse_class_weights
from erts_tf.training.lr_schedule import LR_SCHEDULES
from erts_tf.training.config import RunConfig
from erts_tf.training.distribute import STRATEGIES
from erts_tf.training.selection_config import LEVELS

FLAGS = flags.FLAGS

# data
flags.DEFINE_string("dataset", "synthetic_ecg", "Dataset folder under datasets/ (see `ls datasets`).")
flags.DEFINE_string("dataset_config", None, "TFDS builder config of the dataset (e.g. quickstart, 100hz).")
flags.DEFINE_string("data_dir", None, "TFDS data dir where prepared datasets live (default ~/tensorflow_datasets).")
flags.DEFINE_string("manual_dir", None, "Folder with the manually downloaded archives (real datasets).")
flags.DEFINE_enum("data_backend", "memory", list(BACKENDS),
                  "memory: decode every split into RAM once (small data); lazy: read kept records by sample id "
                  "from an ArrayRecord copy of the dataset (larger than memory). Same batches, same decisions.")
flags.DEFINE_integer("malloc_arena_max", -1,
                     "Cap on glibc's malloc arenas for this process (erts_tf/data/allocator.py): -1: 1 with "
                     "--data_backend=lazy, so that resident memory does not grow with the dataset, none with memory "
                     "(a MALLOC_ARENA_MAX environment variable stands); 0: none (glibc's default); n: n.", lower_bound=-1)
flags.DEFINE_string("exclude_classes", "",
                    "Comma-separated classes left out of training, validation, test and the macro metrics "
                    "(e.g. Q for MIT-BIH, the AAMI convention).")
flags.DEFINE_integer("cv_folds", 0,
                     "Cross-validation over the training data, by group (e.g. patient-wise): pool the train and "
                     "validation splits, deal the distinct values of --cv_group_feature (sorted) to this many "
                     "folds in turn, validate on fold --cv_fold and train on the others; the test split is "
                     "untouched. For choosing settings without the test split. 0: the dataset's own split.",
                     lower_bound=0)
flags.DEFINE_integer("cv_fold", 0, "With --cv_folds: the fold held out as the validation split (0..cv_folds-1).",
                     lower_bound=0)
flags.DEFINE_string("cv_group_feature", "record",
                    "With --cv_folds: the per-sample feature whose values are kept together in one fold "
                    "(MIT-BIH: record, one patient each).")
flags.DEFINE_float("window_s", 0.0,
                   "Train on one random crop of this many seconds per kept record and epoch, seeded by "
                   "(seed, epoch, sample_id); evaluate on windows of it (0: whole records). Needed for "
                   "records of several lengths (the *full* dataset configs).")
flags.DEFINE_float("eval_window_stride_s", 0.0,
                   "With --window_s: evaluation windows start every this many seconds (0: half of --window_s); "
                   "the last one ends at the record's end.")
flags.DEFINE_enum("window_aggregate", "mean", list(windows.AGGREGATES),
                  "With --window_s: a record's probabilities from its windows': mean (of the softmax vectors) "
                  "or max (per class, the PTB-XL benchmark's rule).")
flags.DEFINE_enum("task", "single", list(task_lib.TASKS),
                  "single: one class per record (softmax, cross-entropy); multi: any number of classes per record "
                  "(sigmoid, binary cross-entropy with bounded per-class positive weights), on --label_feature.")
flags.DEFINE_string("label_feature", "",
                    "--task=multi: the dataset's multi-hot feature trained on (PTB-XL: superclasses, diagnostic, "
                    "rhythm, all_statements; CPSC 2018 / Georgia: multi_hot). Records with no positive label in "
                    "it are left out (and counted in the log).")
flags.DEFINE_integer("min_label_count", 1,
                     "--task=multi: keep the classes of --label_feature with at least this many positive records "
                     "in the whole dataset (all splits; 1: the PTB-XL benchmark's rule, every class that occurs).")
# model and optimisation
flags.DEFINE_string("model", "resnet1d", "Backbone name from the registry.")
flags.DEFINE_integer("epochs", 100, "Number of epochs.")
flags.DEFINE_integer("batch_size", 32, "Mini-batch size.")
flags.DEFINE_float("lr", 3e-4, "AdamW learning rate at epoch 0.")
flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay.")
flags.DEFINE_float("lr_decay", 0.98, "exponential schedule: learning-rate factor applied after every epoch.")
flags.DEFINE_enum("lr_schedule", "exponential", list(LR_SCHEDULES),
                  "exponential: lr * lr_decay**epoch (the reference); cosine: linear warm-up, then a half cosine to 0.")
flags.DEFINE_integer("lr_warmup_epochs", 0, "cosine schedule: epochs of linear learning-rate warm-up.")
flags.DEFINE_integer("early_stop_patience", 0,
                     "Stop when validation macro-F1 has not improved for this many epochs (0: never).")
flags.DEFINE_enum("keep_weights", "best", ["best", "last"],
                  "The weights the run saves, tests and exports: best, the epoch of the best validation metric "
                  "(the reference); last, the last epoch's (where validation is too small or noisy to choose "
                  "an epoch, and a schedule that ends at learning rate 0 makes the last epoch a settled one).")
flags.DEFINE_float("ema_momentum", 0.0,
                   "Momentum of an exponential moving average of the weights, updated every optimizer step "
                   "(0: none, the reference). With it, validation, the best/last weights, checkpoints' backbone and "
                   "the saved model are the averaged weights; training steps update the raw ones.")
flags.DEFINE_string("augment", "", "Comma-separated training augmentations: shift, scale, wander, noise, channel_drop (empty: none).")
flags.DEFINE_enum("loss", "class_balanced", ["class_balanced", "plain"], "Cross-entropy weighting.")
flags.DEFINE_float("cb_beta", 0.9999, "Beta of the class-balanced (effective number) weights.")
flags.DEFINE_float("cb_max_ratio", 10.0,
                   "Cap on the ratio of the largest to the smallest class weight (0: no cap, the reference).")
flags.DEFINE_string("class_weights", "",
                    "Class weights given per class instead of the class-balanced ones, as CLASS:WEIGHT pairs naming "
                    "every training class (e.g. N:1,S:40,V:4,F:40; rescaled to sum to the number of classes; "
                    "single-label runs with --loss=class_balanced). Empty: the class-balanced weights.")
flags.DEFINE_boolean("reference_loss_split", False,
                     "Reproduce the reference: plain CE for mode `full`, class-balanced for the others.")
# selection
flags.DEFINE_enum("mode", "erts", list(MODES), "Selection mode.")
flags.DEFINE_enum("level", "epoch", list(LEVELS),
                  "epoch: dropped samples are not read at all; batch: the reference's in-batch masking.")
flags.DEFINE_float("tau", 0.3, "dbpd threshold on p_true (0: misclassified samples only).")
flags.DEFINE_float("decay", 0.99, "srd: a decay**epoch fraction is kept.")
flags.DEFINE_float("cam_keep_frac", 0.7, "erts: share of the low-confidence candidates kept by focus.")
flags.DEFINE_enum("focus_score", "entropy", list(focus.FOCUS_SCORES), "Focus score of the Grad-CAM map.")
flags.DEFINE_float("prune_ratio", 0.5, "infobatch, erts_infobatch: share of the well-learned samples dropped per epoch.")
flags.DEFINE_float("anneal_frac", 0.0, "Share of the last epochs trained on full data (InfoBatch's annealing; 0: none).")
flags.DEFINE_float("unreliable_frac", 0.2,
                   "erts_infobatch: share of each class's hard samples, lowest focus first, treated as unreliable.")
flags.DEFINE_float("unreliable_weight", 0.0, "erts_infobatch: loss weight of an unreliable sample (0: dropped).")
flags.DEFINE_float("min_keep_frac", 0.2,
                   "Every selection epoch keeps at least this share of every class (0: the reference's rescue).")
flags.DEFINE_integer("warm_up_epochs", 5, "Full-data epochs before selection starts.")
flags.DEFINE_integer("cam_start_epoch", 3, "Epochs after warm-up before the focus filter starts.")
flags.DEFINE_integer("start_revision", 50, "From this epoch on every epoch is full data (-1: never).")
flags.DEFINE_integer("rescore_every", 5, "Epoch level: re-score dropped samples every N selection epochs (0: never).")
flags.DEFINE_integer("focus_every", 1, "Epoch level: refresh focus scores in one of every N epochs (1: every epoch).")
flags.DEFINE_boolean("always_cam", False, "Compute focus scores in every epoch (audits, validity studies).")
# run
flags.DEFINE_string("output_dir", None, "Run directory (its parent must exist).")
flags.DEFINE_integer("seed", 0, "Seed of weights, data order and random policies.")
flags.DEFINE_boolean("resume", False, "Resume the unfinished run in --output_dir from its last finished epoch.")
flags.DEFINE_boolean("overwrite", False, "Replace an existing run in --output_dir.")
flags.DEFINE_boolean("skip_nonfinite", False, "Skip (and count) batches with a non-finite loss/gradient instead of failing.")
flags.DEFINE_boolean("jit_compile", False, "Compile the train step with XLA.")
flags.DEFINE_enum("strategy", "default", list(STRATEGIES),
                  "tf.distribute strategy: mirrored (this machine's GPUs), multiworker (TF_CONFIG); see BUILD.md.")
flags.DEFINE_boolean("report", True, "After training: bootstrap evaluation of the test split, report.md and plots.")
flags.DEFINE_integer("tensorboard_images_every", 5, "Grad-CAM overlay images in TensorBoard every N epochs (0: never).")
flags.DEFINE_integer("verbose", 2, "Keras verbosity (0 silent, 1 progress bar, 2 one line per epoch).")

flags.mark_flag_as_required("output_dir")


def _check(condition, message):
    if not condition:
        raise flags.ValidationError(message)
    return True


flags.register_validator("model", lambda v: _check(v in models.names(),
                         f"unknown model {v!r}; choose one of {', '.join(models.names())}"))
flags.register_validator("dataset", lambda v: _check(v in registry.names(),
                         f"unknown dataset {v!r}; choose one of {', '.join(registry.names())}"))
for _name in ("epochs", "batch_size"):
    flags.register_validator(_name, lambda v, n=_name: _check(v is not None and v > 0, f"--{n} must be > 0, got {v}"))
flags.register_validator("lr", lambda v: _check(v > 0, f"--lr must be > 0, got {v}"))
flags.register_validator("ema_momentum", lambda v: _check(0 <= v < 1, f"--ema_momentum must be in [0, 1), got {v}"))
for _name in ("tau", "decay", "cam_keep_frac", "lr_decay", "anneal_frac", "unreliable_frac", "unreliable_weight",
              "min_keep_frac"):
    flags.register_validator(_name, lambda v, n=_name: _check(0 <= v <= 1, f"--{n} must be in [0, 1], got {v}"))
flags.register_validator("prune_ratio", lambda v: _check(0 <= v < 1, f"--prune_ratio must be in [0, 1), got {v}"))
flags.register_validator("cb_max_ratio", lambda v: _check(v == 0 or v >= 1, f"--cb_max_ratio must be 0 or >= 1, got {v}"))
flags.register_validator("class_weights", lambda v: _check(not _class_weights_error(v),
                                                             f"--class_weights={v}: {_class_weights_error(v)}"))
flags.register_multi_flags_validator(
    ["class_weights", "loss", "task", "reference_loss_split"],
    lambda d: _check(not d["class_weights"] or not class_weights_conflict(d["loss"], d["task"], d["reference_loss_split"]),
                     class_weights_conflict(d["loss"], d["task"], d["reference_loss_split"])))
flags.register_validator("augment", lambda v: _check(not _augment_error(v), f"--augment={v}: {_augment_error(v)}"))
flags.register_validator("focus_every", lambda v: _check(v >= 1, f"--focus_every must be >= 1, got {v}"))
for _name in ("warm_up_epochs", "cam_start_epoch", "rescore_every", "lr_warmup_epochs", "early_stop_patience"):
    flags.register_validator(_name, lambda v, n=_name: _check(v >= 0, f"--{n} must be >= 0, got {v}"))
flags.register_validator(
    "output_dir",
    lambda v: _check(v is None or os.path.isdir(os.path.dirname(os.path.abspath(v)) or "."),
                     f"the parent folder of --output_dir={v} does not exist"),
)
flags.register_validator("window_s", lambda v: _check(v >= 0, f"--window_s must be >= 0 seconds, got {v}"))
flags.register_multi_flags_validator(
    ["window_s", "eval_window_stride_s"],
    lambda d: _check(0 <= d["eval_window_stride_s"] <= d["window_s"] and (d["window_s"] or not d["eval_window_stride_s"]),
                     f"--eval_window_stride_s={d['eval_window_stride_s']} must be in [0, --window_s={d['window_s']}] "
                     "(evaluation windows that leave gaps would skip samples) and needs --window_s"))
flags.register_multi_flags_validator(
    ["cv_folds", "cv_fold", "data_backend"],
    lambda d: _check(not d["cv_folds"] or (d["cv_folds"] >= 2 and d["cv_fold"] < d["cv_folds"]
                                           and d["data_backend"] == "memory"),
                     f"--cv_folds={d['cv_folds']} --cv_fold={d['cv_fold']}: cross-validation needs --cv_folds >= 2, "
                     "--cv_fold below it and --data_backend=memory"))
flags.register_validator("min_label_count", lambda v: _check(v >= 1, f"--min_label_count must be >= 1, got {v}"))
flags.register_multi_flags_validator(
    ["task", "label_feature", "exclude_classes"],
    lambda d: _check((d["task"] == "multi") == bool(d["label_feature"]) and not (d["task"] == "multi" and d["exclude_classes"]),
                     f"--task={d['task']} --label_feature={d['label_feature']!r}: --task=multi trains on a multi-hot "
                     "--label_feature (and takes no --exclude_classes); --task=single on the dataset's label, "
                     "without --label_feature"))
flags.register_multi_flags_validator(
    ["resume", "overwrite"], lambda d: _check(not (d["resume"] and d["overwrite"]),
                                              "--resume and --overwrite exclude each other"))

flags.register_multi_flags_validator(
    ["strategy", "level", "skip_nonfinite"],
    lambda d: _check(d["strategy"] == "default" or (d["level"] == "epoch" and not d["skip_nonfinite"]),
                     f"--strategy={d['strategy']} supports --level=epoch without --skip_nonfinite only"))


def _class_weights_error(value) -> str:
    if not value:
        return ""
    try:
        parse_class_weights(value)
    except ValueError as error:
        return str(error)
    return ""


def _augment_error(value) -> str:
    try:
        augment.parse(value)
    except ValueError as error:
        return str(error)
    return ""


def parse(argv: list[str]) -> list[str]:
    """absl flag parser for ``app.run``: a bad flag prints one line and exits with code 2."""
    return cli.parse_flags(argv)


def run_config() -> RunConfig:
    """The ``RunConfig`` described by the parsed flags."""
    return RunConfig(**{f: FLAGS[f].value for f in RunConfig.__dataclass_fields__})
