"""``python -m erts_tf.evaluate --run_dir=runs/quick [--split=test] [--bootstrap=1000] [--seed=0]``.

Scores a finished run's ``model.keras`` (best validation weights) on one split
of the run's dataset and writes ``<run_dir>/eval_<split>.json``:

* ``metrics``: macro-F1, accuracy, per-class precision/recall/F1/support and the
  confusion matrix (``erts_tf.metrics.classification_metrics``, scikit-learn's
  definitions, ``zero_division=0``), one-vs-rest AUROC per class and macro;
* ``metrics.tuned``: the same metrics at the operating point chosen on the
  VALIDATION split (per-class log-probability offsets that maximise its
  macro-F1, ``metrics.macro_f1_optimal_offsets``; never chosen on the split
  scored): the decision rule ``argmax(log p + offsets)``, the offsets by class;
* ``bootstrap``: percentile 95 % intervals of all of them from ``--bootstrap``
  resamples of the split, seeded by ``--seed`` (``erts_tf.bootstrap``);
* ``multilabel`` (datasets with a multi-hot feature: PTB-XL ``superclasses``,
  the PhysioNet/CinC ``multi_hot``): macro AUROC of the class probabilities
  against the multi-hot targets. The model is single-label (softmax), so a
  0.5-threshold multi-label F1 of its probabilities is not reported; the JSON
  says so in ``multilabel.note``.

A multi-label run (``--task=multi``: sigmoid outputs on ``--label_feature``) is
scored as the PTB-XL benchmark scores it: ``metrics`` holds the macro AUROC
(the leaderboard's metric) and the per-class AUROCs, macro-F1 and per-class
precision/recall/F1 at threshold 0.5, and ``tuned``: the F1s at per-class
thresholds chosen on the VALIDATION split (``metrics.f1_optimal_thresholds``;
never on the split scored); ``bootstrap`` their intervals.

It prints the same as a table. A bad flag, a missing run folder or a run
without ``model.keras`` exits with code 2 and a one-line message.

As a library: ``evaluate(run_dir, split="test", rounds=1000, seed=0)``
returns (and writes) the dict.
"""

from __future__ import annotations

import os

from erts_tf import cli, run_data, run_folder

# Multi-hot features of the datasets, aligned with the label's class names.
MULTI_LABEL_FEATURES = ("superclasses", "multi_hot")
SINGLE_LABEL_NOTE = (
    "the model is single-label (softmax over the classes): these are the AUROCs of its class probabilities "
    "against the multi-hot targets; a multi-label F1 at threshold 0.5 of softmax outputs is not meaningful "
    "and is not reported"
)


class EvaluateError(Exception):
    """The run or the data cannot be evaluated (message is for the user)."""


# What ``evaluate`` raises with a message for the user: a command that evaluates catches these.
ERRORS = (run_folder.RunFolderError, run_folder.RunFolderBusy, run_data.DataError, EvaluateError)


def multi_hot_feature(builder, n_classes: int) -> str | None:
    """Name of the dataset's multi-hot feature aligned with the classes, if it has one."""
    features = builder.info.features
    for name in MULTI_LABEL_FEATURES:
        if name in features and tuple(getattr(features[name], "shape", ())) == (n_classes,):
            return name
    return None


def evaluate(run_dir: str, split: str = "test", rounds: int = 1000, seed: int = 0, data_dir: str | None = None,
             batch_size: int = 64, write: bool = True) -> dict:
    """Scores ``<run_dir>/model.keras`` on ``split``; writes ``<run_dir>/eval_<split>.json``; returns the dict.

    Args:
      run_dir: a finished run folder (``config.json``, ``model.keras``).
      split: one of ``SPLITS``.
      rounds: bootstrap rounds (0: no intervals).
      seed: seed of the bootstrap resampling.
      data_dir: TFDS data dir, if not the one saved in the run's config.
      batch_size: prediction batch size.
      write: write the JSON file.

    The split is decoded as the run's training decoded it (``run_data.load_split``:
    without the classes of its ``--exclude_classes``).

    Raises:
      RunFolderError: no run folder, or no ``model.keras`` in it.
      DataError: the run's dataset cannot be prepared or decoded.
      EvaluateError: an unknown or empty split, or signals the model does not take.
    """
    if split not in run_data.SPLITS:
        raise EvaluateError(f"unknown split {split!r}; choose one of {', '.join(run_data.SPLITS)}")
    config = run_folder.read_config(run_dir, data_dir)
    backbone = run_folder.load_model(run_dir)
    from erts_tf import bootstrap as bootstrap_lib  # imported late: a bad --run_dir fails fast
    from erts_tf import inference, metrics
    from erts_tf.data import label_sets

    builder = run_data.prepare_builder(config)
    arrays = run_data.load_split(builder, config, split)
    if arrays.n == 0:
        raise EvaluateError(f"{config.dataset}/{split} is empty")
    expected = tuple(backbone.inputs[0].shape[1:])
    if tuple(arrays.input_shape) != expected:
        raise EvaluateError(f"{config.dataset}/{split}: signals are {arrays.input_shape}, the model expects {expected}")
    if config.task == "multi":
        result = _evaluate_multi_label(config, builder, arrays, backbone, split, rounds, seed, batch_size)
        return _finish(result, run_dir, split, write)
    probs = inference.split_probs(backbone, arrays, batch_size)
    names = arrays.class_names
    validation = arrays if split == "validation" else run_data.load_split(builder, config, "validation")
    validation_probs = probs if split == "validation" else inference.split_probs(backbone, validation, batch_size)
    offsets = metrics.macro_f1_optimal_offsets(validation.label, validation_probs)
    result = {
        **_header(config, split, names), "offsets_from": "validation",
        "metrics": {**metrics.classification_metrics(arrays.label, probs, names, tuned_offsets=offsets),
                    **metrics.auroc_ovr(arrays.label, probs, names)},
    }
    if rounds > 0:
        result["bootstrap"] = bootstrap_lib.single_label_bootstrap(arrays.label, probs, names, rounds, seed)
        result["bootstrap"]["tuned_macro_f1"] = bootstrap_lib.single_label_bootstrap(
            arrays.label, metrics.offset_probs(probs, offsets), names, rounds, seed)["macro_f1"]
    feature = multi_hot_feature(builder, len(names))
    if feature is not None:
        targets = label_sets.read_feature(builder, split, feature)
        result["multilabel"] = {
            "feature": feature,
            "model_output": "softmax (single-label)",
            "note": SINGLE_LABEL_NOTE,
            **metrics.multilabel_metrics(targets, probs, names, threshold=None),
        }
        if rounds > 0:
            result["multilabel"]["bootstrap"] = bootstrap_lib.multilabel_bootstrap(
                targets, probs, names, rounds, seed, threshold=None)
    return _finish(result, run_dir, split, write)


def _evaluate_multi_label(config, builder, arrays, backbone, split, rounds, seed, batch_size) -> dict:
    """The multi-label evaluation (module docstring) of ``arrays`` (multi-hot labels) by a sigmoid ``backbone``."""
    from erts_tf import bootstrap as bootstrap_lib
    from erts_tf import inference, metrics

    names = arrays.class_names
    probs = inference.split_probs(backbone, arrays, batch_size, "sigmoid")
    validation = arrays if split == "validation" else run_data.load_split(builder, config, "validation")
    validation_probs = probs if split == "validation" else inference.split_probs(backbone, validation, batch_size,
                                                                                 "sigmoid")
    thresholds = metrics.f1_optimal_thresholds(validation.label, validation_probs)
    result = {**_header(config, split, names), "task": "multi", "label_feature": config.label_feature,
              "model_output": "sigmoid (multi-label)", "thresholds_from": "validation",
              "metrics": metrics.multilabel_metrics(arrays.label, probs, names, tuned_thresholds=thresholds)}
    if rounds > 0:
        result["bootstrap"] = bootstrap_lib.multilabel_bootstrap(arrays.label, probs, names, rounds, seed)
        result["bootstrap"]["tuned_macro_f1"] = bootstrap_lib.multilabel_bootstrap(
            arrays.label, probs, names, rounds, seed, threshold=thresholds)["macro_f1"]
    return result


def _header(config, split: str, names) -> dict:
    return {"split": split, "dataset": config.dataset,
            "dataset_config": config.dataset_config, "model": config.model, "mode": config.mode,
            "level": config.level, "classes": names}


def _finish(result: dict, run_dir: str, split: str, write: bool) -> dict:
    """``result`` with the training summary's macro-F1 of ``split``; written as ``eval_<split>.json`` if ``write``."""
    result = {"run_dir": os.path.abspath(run_dir), **result}
    trained = (run_folder.read_summary(run_dir) or {}).get(split)
    if trained and "macro_f1" in trained:
        result["training_summary_macro_f1"] = trained["macro_f1"]
    if write:
        run_folder.write_json(run_dir, run_folder.eval_name(split), result)
    return result


def _ci(entry: dict | None) -> str:
    if not entry or entry.get("low") is None:
        return ""
    return f"[{entry['low']:.4f}, {entry['high']:.4f}]"


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def table(result: dict) -> str:
    """The evaluation as a plain-text table (point estimates, 95 % intervals, confusion matrix)."""
    m, boot = result["metrics"], result.get("bootstrap", {})
    level = boot.get("level", 0.95)
    ci_head = f"{int(round(level * 100))}% CI ({boot['rounds']} rounds)" if boot else ""
    if result.get("task") == "multi":
        return _multi_label_table(result, ci_head)
    lines = [
        f"{result['dataset']}/{result['split']} (n={m['n']}), model {result['model']}, mode {result['mode']}/{result['level']}",
        f"{'metric':<30}{'value':>10}  {ci_head}",
        f"{'macro-F1':<30}{m['macro_f1']:>10.4f}  {_ci(boot.get('macro_f1'))}",
        f"{'accuracy':<30}{m['accuracy']:>10.4f}  {_ci(boot.get('accuracy'))}",
        f"{'macro AUROC (one-vs-rest)':<30}{_num(m['macro_auroc']):>10}  {_ci(boot.get('macro_auroc'))}",
    ]
    per_class_ci = boot.get("per_class", {})
    for name, v in m["per_class"].items():
        ci = per_class_ci.get(name, {})
        lines.append(f"{'  ' + name + ' (n=' + str(v['support']) + ')':<30}"
                     f"P {v['precision']:.3f}  R {v['recall']:.3f}  F1 {v['f1']:.3f} {_ci(ci.get('f1'))}"
                     f"  AUROC {_num(m['per_class_auroc'][name])}")
    tuned = m.get("tuned")
    if tuned:
        offsets = ", ".join(f"{name} {v:+.2f}" for name, v in tuned["offsets"].items())
        lines.append(f"{'macro-F1 (validation offsets)':<30}{tuned['macro_f1']:>10.4f}  "
                     f"{_ci(boot.get('tuned_macro_f1'))}")
        lines.append(f"  (log-probability offsets chosen on validation: {offsets})")
        for name, v in tuned["per_class"].items():
            lines.append(f"{'  ' + name + ' (val. offsets)':<30}"
                         f"P {v['precision']:.3f}  R {v['recall']:.3f}  F1 {v['f1']:.3f}")
    if "multilabel" in result:
        ml = result["multilabel"]
        ml_ci = ml.get("bootstrap", {}).get("macro_auroc")
        lines.append(f"{'multi-label macro AUROC':<30}{_num(ml['macro_auroc']):>10}  {_ci(ml_ci)}")
        lines.append(f"  ({ml['feature']}; {ml['model_output']})")
    if "training_summary_macro_f1" in result:
        lines.append(f"{'macro-F1 in summary.json':<30}{result['training_summary_macro_f1']:>10.4f}")
    width = max(len(n) for n in result["classes"])
    lines.append("confusion matrix (rows: true, columns: predicted)")
    lines.append(" " * (width + 2) + "".join(f"{n[:8]:>9}" for n in result["classes"]))
    for name, row in zip(result["classes"], m["confusion_matrix"]):
        lines.append(f"  {name:<{width}}" + "".join(f"{c:>9d}" for c in row))
    return "\n".join(lines)


def _multi_label_table(result: dict, ci_head: str) -> str:
    m, boot = result["metrics"], result.get("bootstrap", {})
    per_class_ci = boot.get("per_class_auroc", {})
    lines = [
        f"{result['dataset']}/{result['split']} (n={m['n']}), {result['label_feature']} (multi-label, sigmoid), "
        f"model {result['model']}, mode {result['mode']}/{result['level']}",
        f"{'metric':<30}{'value':>10}  {ci_head}",
        f"{'macro AUROC':<30}{_num(m['macro_auroc']):>10}  {_ci(boot.get('macro_auroc'))}",
        f"{'macro-F1 (0.5)':<30}{m['macro_f1']:>10.4f}  {_ci(boot.get('macro_f1'))}",
        f"{'macro-F1 (validation thr.)':<30}{m['tuned']['macro_f1']:>10.4f}  {_ci(boot.get('tuned_macro_f1'))}",
    ]
    for name, v in m["per_class"].items():
        lines.append(f"{'  ' + name + ' (n=' + str(v['support']) + ')':<30}AUROC {_num(v['auroc'])} "
                     f"{_ci(per_class_ci.get(name))}  F1 {v['f1']:.3f}  F1 (thr. {m['tuned']['thresholds'][name]:.2f}) "
                     f"{m['tuned']['per_class_f1'][name]:.3f}")
    if "training_summary_macro_f1" in result:
        lines.append(f"{'macro-F1 in summary.json':<30}{result['training_summary_macro_f1']:>10.4f}")
    return "\n".join(lines)


def _define_flags():
    from absl import flags

    flags.DEFINE_string("run_dir", None, "Folder of a finished run (config.json, model.keras).")
    flags.DEFINE_enum("split", "test", list(run_data.SPLITS), "Split to score.")
    flags.DEFINE_integer("bootstrap", 1000, "Bootstrap rounds for the 95% intervals (0: none).")
    flags.DEFINE_integer("seed", 0, "Seed of the bootstrap resampling.")
    flags.DEFINE_integer("batch_size", 64, "Prediction batch size.")
    flags.DEFINE_string("data_dir", None, "TFDS data dir, if not the one saved in the run's config.json.")
    flags.mark_flag_as_required("run_dir")
    flags.register_validator("bootstrap", lambda v: v == 0 or v >= 100,
                             "--bootstrap must be 0 (no intervals) or >= 100 rounds")
    flags.register_validator("batch_size", lambda v: v > 0, "--batch_size must be > 0")
    return flags.FLAGS


def main(argv: list[str]) -> None:
    from absl import flags, logging

    cli.refuse_positional(argv)
    f = flags.FLAGS
    if not f["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TFDS logs every dataset it opens at INFO
    try:
        with run_folder.lock_existing([f.run_dir], "an evaluation"):
            result = evaluate(f.run_dir, f.split, f.bootstrap, f.seed, f.data_dir, f.batch_size)
    except ERRORS as error:
        cli.exit_with_error(str(error))
    print(table(result))
    print(f"wrote {run_folder.path(f.run_dir, run_folder.eval_name(f.split))}")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main, flags_parser=cli.parse_flags)
