"""Does the focus signal mean what it claims? ROC-AUC of each focus score for unreliable samples.

For each dataset a model is trained as ERTS trains it up to the epoch where
the focus filter starts (``warm_up_epochs + cam_start_epoch`` epochs of mode
``erts`` at epoch level; the weights after the last of them are the ones
whose scores feed the first focus-filter decision). Then the whole training
split is scored in inference mode: the true-class Grad-CAM map at the
backbone's target layer (``model.cam_model`` + ``erts_tf.explain.gradcam``)
and every focus score of ``erts_tf.explain.focus.FOCUS_SCORES``.

Ground truth of "unreliable":
  synthetic_ecg: the recorded corruption (each type against clean ``none``,
    and any corruption against none);
  ptbxl: any of the signal-quality flags (baseline_drift, static_noise,
    burst_noise, electrodes_problems) against none, each flag against none, and
    records without a diagnostic statement (labelled NORM by default);
  cinc2017: the noisy class ``~`` (``is_noisy``) against the rest.

SIGN: a focus score is meant to be LOW for unreliable samples, so the AUROC
reported is that of ``-focus`` with the unreliable samples as positives:
1.0 = every unreliable sample is less focused than every reliable one, 0.5 =
no signal, < 0.5 = unreliable samples are MORE focused. ``1 - p_true`` (low
confidence) is given beside it for reference, and every AUROC is reported on
all training samples and on the dbpd candidates only (``p_true < tau``), the
samples among which ERTS's filter actually ranks by focus. CIs: percentile
bootstrap over the samples (erts_tf.bootstrap).

What is dropped: from ``audit.csv`` of short epoch-level runs of erts and
dbpd (``--audit_epochs``; by default, for synthetic_ecg, the runs that
``benchmarks/modes.py`` left in ``--work_dir`` are reused when present), the
share of unreliable samples among the drops erts made for ``low_focus`` and
among those dbpd made for ``confident``, against their share of the training
split. audit.csv has one row per change of a sample's kept/dropped status, so
a sample that stays dropped while its reason changes is counted once, under
the reason of the change.

Over a whole run (``--over_run``): for each dataset ONE run of mode ``full``
at epoch level with ``always_cam`` and the recommended recipe (``RECIPE``),
``--epochs`` long. After every epoch (0-based, as in ``audit.csv``) a callback
scores the whole training split as above and reports, for unreliable (the
"any" group above) vs reliable samples on all training samples, the AUROC
(bootstrap CI) of ``-focus`` for every score, of ``1 - p_true``, and of
``-focus`` of the run's ``focus_score`` as the training step recorded it this
epoch (``model.state.focus``: training-mode forward of the augmented record),
beside the epoch's validation macro-F1. The JSON is rewritten after every
epoch, so a stopped run keeps its finished epochs. The summary per dataset
gives each score's maximum and last-epoch AUROC, and the epochs where the CI
lower bound of the run's focus score (both views) exceeds 0.5. The callback
goes in through ``run.run(config, data, extra_callbacks=[...])``.

Usage:
  python benchmarks/focus_validity.py [--datasets synthetic_ecg,ptbxl,cinc2017]
  python benchmarks/focus_validity.py --smoke
  python benchmarks/focus_validity.py --over_run [--epochs 24]   (--smoke: 2 epochs)
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import glob
import os
import pathlib
import re
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common  # noqa: E402
import modes  # noqa: E402

from erts_tf import run_folder  # noqa: E402  (no TensorFlow)

NAME = "focus_validity"
OVER_RUN = "focus_validity_over_run"
RECIPE = modes.RECIPES["recommended"]  # the recommended training recipe (configs/recipe.cfg), used by --over_run
TRAINING_FORWARD = " (training forward)"  # suffix of the score the training step recorded
SIGN = "AUROC of -focus with unreliable samples as positives (focus is meant to be LOW for them)"
DEFAULT_CONFIGS = {"synthetic_ecg": "quickstart", "ptbxl": "100hz", "cinc2017": "9s", "mitbih_arrhythmia": "mlii"}
PTBXL_FLAGS = ("baseline_drift", "static_noise", "burst_noise", "electrodes_problems")


def parse(argv=None):
    parser = common.base_parser(__doc__, NAME)
    parser.add_argument("--datasets", default=None, help="comma-separated (default synthetic_ecg,ptbxl,cinc2017)")
    parser.add_argument("--dataset_configs", default=None,
                        help="name=config,... overrides (default synthetic_ecg=quickstart, ptbxl=100hz, cinc2017=9s)")
    parser.add_argument("--model", default="resnet1d")
    parser.add_argument("--warm_up_epochs", type=int, default=None, help="default 3 (1 with --smoke)")
    parser.add_argument("--cam_start_epoch", type=int, default=1)
    parser.add_argument("--tau", type=float, default=0.3)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--audit_epochs", type=int, default=None,
                        help="epochs of the short erts/dbpd runs for the drop shares (default warm-up + cam start + 3; 0 skips)")
    parser.add_argument("--audit_datasets", default=None,
                        help="datasets that get the short erts/dbpd audit runs (default: all of --datasets)")
    parser.add_argument("--no_reuse_modes_runs", action="store_true",
                        help="do not reuse audit.csv files of benchmarks/modes.py runs found in --work_dir")
    parser.add_argument("--rounds", type=int, default=None, help="bootstrap rounds (default 1000; 200 with --smoke)")
    parser.add_argument("--render", default=None, help="print the tables and redraw the plot of an existing JSON (no training)")
    parser.add_argument("--over_run", action="store_true",
                        help=f"measure after every epoch of one full run instead (default output results/{OVER_RUN}.json)")
    parser.add_argument("--epochs", type=int, default=None, help="--over_run: run length (default 24; 2 with --smoke)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.datasets = [d for d in (args.datasets or ("synthetic_ecg" if smoke else "synthetic_ecg,ptbxl,cinc2017")).split(",") if d]
    configs = dict(DEFAULT_CONFIGS, **({"synthetic_ecg": "tiny"} if smoke else {}))
    for item in (args.dataset_configs or "").split(","):
        if "=" in item:
            key, value = item.split("=", 1)
            configs[key] = value
    args.configs = {d: configs.get(d) for d in args.datasets}
    args.warm_up_epochs = args.warm_up_epochs if args.warm_up_epochs is not None else (1 if smoke else 3)
    if args.audit_epochs is None:
        args.audit_epochs = args.warm_up_epochs + args.cam_start_epoch + (1 if smoke else 3)
    args.audit_datasets = [d for d in (args.audit_datasets or ",".join(args.datasets)).split(",") if d]
    args.rounds = args.rounds or (200 if smoke else 1000)
    args.epochs = args.epochs or (2 if smoke else 24)
    return args


def _config(args, dataset, output_dir, mode, epochs):
    from erts_tf.training.config import RunConfig

    return RunConfig(
        output_dir=output_dir, dataset=dataset, dataset_config=args.configs[dataset], data_dir=args.data_dir,
        manual_dir=args.manual_dir if dataset != "synthetic_ecg" else None, model=args.model, epochs=epochs,
        batch_size=args.batch_size, mode=mode, level="epoch", tau=args.tau, warm_up_epochs=args.warm_up_epochs,
        cam_start_epoch=args.cam_start_epoch, start_revision=-1, rescore_every=2, seed=args.seed,
        overwrite=True, verbose=0, report=False,
    )


def load(args, dataset, entry):
    """The dataset's ``run.Data``, or None with the reason in ``entry["error"]``."""
    from erts_tf.training import run

    try:
        return run.load_data(_config(args, dataset, os.path.join(args.work_dir, "unused"), "erts", 1))
    except Exception as error:  # a real builder may be unfinished or its archive absent: say so, go on
        entry["error"] = f"{type(error).__name__}: {error}"[:2000]
        print(f"{dataset}: not run: {entry['error']}", flush=True)
        return None


def each_dataset(args, result):
    """Yields ``(dataset, entry, data)`` for each of ``args.datasets`` that loads; ``entry`` is its dict in
    ``result["datasets"]`` (holding the error of one that does not load)."""
    for dataset in args.datasets:
        entry = {"config": args.configs[dataset]}
        result["datasets"][dataset] = entry
        data = load(args, dataset, entry)
        if data is not None:
            yield dataset, entry, data


# -- ground truth ------------------------------------------------------------------------------
def unreliable_groups(dataset: str, arrays) -> tuple[dict, dict]:
    """``{group: positive (n,) bool}`` and ``{group: the negatives it is compared against (n,) bool}``."""
    import numpy as np

    n = arrays.n
    everyone = np.ones(n, bool)
    positives, negatives = {}, {}
    if "corruption" in arrays.extras:  # synthetic_ecg
        names = arrays.extra_names.get("corruption")
        values = arrays.extras["corruption"]
        codes = np.array([names[int(v)] for v in values]) if names else np.array(values).astype(str)
        clean = codes == "none"
        positives["any corruption"], negatives["any corruption"] = ~clean, clean
        for kind in sorted(set(codes) - {"none"}):
            positives[kind], negatives[kind] = codes == kind, clean
    if all(f in arrays.extras for f in PTBXL_FLAGS):  # ptbxl
        flags = {f: np.asarray(arrays.extras[f]).astype(bool) for f in PTBXL_FLAGS}
        anyflag = np.any(list(flags.values()), axis=0)
        positives["any quality flag"], negatives["any quality flag"] = anyflag, ~anyflag
        for f, v in flags.items():
            positives[f], negatives[f] = v, ~anyflag
        if "has_diagnostic_label" in arrays.extras:
            missing = ~np.asarray(arrays.extras["has_diagnostic_label"]).astype(bool)
            positives["no diagnostic statement (NORM by default)"] = missing
            negatives["no diagnostic statement (NORM by default)"] = ~missing
    if "is_noisy" in arrays.extras:  # cinc2017
        noisy = np.asarray(arrays.extras["is_noisy"]).astype(bool)
        positives["noisy (~)"], negatives["noisy (~)"] = noisy, ~noisy
    for key in list(positives):
        if positives[key].sum() == 0 or negatives[key].sum() == 0:
            del positives[key], negatives[key]
    del everyone
    return positives, negatives


def unreliable_any(dataset: str, arrays):
    """The "any unreliable" group of ``dataset``: ``(name, (n,) bool)``, or ``(None, None)`` if it has none."""
    positives, _ = unreliable_groups(dataset, arrays)
    for key in ("any corruption", "any quality flag", "noisy (~)"):
        if key in positives:
            return key, positives[key]
    return None, None


# -- scoring -----------------------------------------------------------------------------------
def train_to_filter_start(args, dataset, data):
    """Runs erts for warm-up + cam-start epochs; returns the backbone with the last epoch's weights."""
    import keras
    import tensorflow as tf

    from erts_tf import models
    from erts_tf.training import run

    epochs = args.warm_up_epochs + args.cam_start_epoch
    out = os.path.join(args.work_dir, NAME, f"{dataset}_{args.configs[dataset]}", f"model_s{args.seed}")
    keras.backend.clear_session()
    with common.Meter() as meter:
        summary = run.run(_config(args, dataset, out, "erts", epochs), data)
    backbone = models.build(args.model, data.train.input_shape, len(data.train.class_names))
    checkpoint = run_folder.path(out, run_folder.CHECKPOINTS, f"ckpt-{epochs - 1}")
    status = tf.train.Checkpoint(backbone=backbone).restore(checkpoint)
    status.expect_partial()
    return backbone, {"epochs_trained": epochs, "validation_macro_f1_last": summary["epochs"][-1].get("val_macro_f1"),
                      "wall_s": meter.result["wall_s"], "cpu_s": meter.result["cpu_s"]}


def cam_view(model_name, backbone):
    """``x (batch, time, leads) -> (target-layer activations, logits)`` of ``backbone``, as ``ERTSModel.cam_model``."""
    from erts_tf import models
    from erts_tf.explain import gradcam

    return gradcam.cam_view(backbone, models.get(model_name).target_layer)


def score_split(cam_model, arrays) -> dict:
    """Inference-mode ``p_true``, ``correct`` and every focus score, each ``(n,)``, of each sample of
    ``arrays`` (sample-id order), with ``cam_model: x -> (target-layer activations, logits)``."""
    import numpy as np
    import tensorflow as tf

    from erts_tf.explain import focus as focus_lib
    from erts_tf.explain.gradcam import gradcam_over_time, true_class_logit_sum

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            activations, logits = cam_model(x, training=False)
            cam_target = true_class_logit_sum(logits, y)
        maps = gradcam_over_time(activations, tape.gradient(cam_target, activations))
        probs = tf.nn.softmax(tf.cast(logits, tf.float32))
        p_true = tf.gather(probs, y, axis=1, batch_dims=1)
        correct = tf.equal(tf.argmax(probs, -1, output_type=tf.int32), y)
        return p_true, correct, focus_lib.all_scores(maps)

    out = {"p_true": [], "correct": [], **{k: [] for k in focus_lib.FOCUS_SCORES}}
    for start in range(0, arrays.n, 64):
        x = tf.constant(arrays.signal[start:start + 64])
        y = tf.constant(arrays.label[start:start + 64], tf.int32)
        p_true, correct, scores = step(x, y)
        out["p_true"].append(p_true.numpy())
        out["correct"].append(correct.numpy())
        for k, v in scores.items():
            out[k].append(v.numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def auroc_ci(positive, negative, score, rounds, seed=0) -> dict:
    """AUROC of ``score`` for ``positive`` vs ``negative`` samples (others ignored), percentile bootstrap CI."""
    import numpy as np

    from erts_tf import bootstrap

    use = positive | negative
    pos, values = positive[use], np.asarray(score, np.float64)[use]
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return {"point": None, "low": None, "high": None, "n_pos": n_pos, "n_neg": n_neg}
    point = float(bootstrap.auroc_by_rank(pos[None], values[None])[0])
    boot = np.concatenate([bootstrap.auroc_by_rank(pos[index], values[index])
                           for index in bootstrap.resample_chunks(len(pos), rounds, seed)])
    low, high = bootstrap.percentile_interval(boot, 0.95)
    return {"point": point, "low": low, "high": high, "n_pos": n_pos, "n_neg": n_neg}


def auroc_row(scores, positive, negative, rounds) -> dict:
    """``{name: CI}``: AUROC of -focus for each score of ``FOCUS_SCORES`` and of 1 - p_true (``(n,)`` arrays)."""
    from erts_tf.explain import focus as focus_lib

    row = {name: auroc_ci(positive, negative, -scores[name], rounds) for name in focus_lib.FOCUS_SCORES}
    row["1 - p_true"] = auroc_ci(positive, negative, 1.0 - scores["p_true"], rounds)
    return row


def validity(args, scores, positives, negatives) -> dict:
    """AUROC of -focus (each score) and of 1 - p_true, on all samples and on the dbpd candidates."""
    candidates = scores["p_true"] < args.tau
    result = {}
    for subset, mask in (("all", None), ("candidates", candidates)):
        rows = {}
        for group in positives:
            pos, neg = positives[group], negatives[group]
            if mask is not None:
                pos, neg = pos & mask, neg & mask
            rows[group] = auroc_row(scores, pos, neg, args.rounds)
        result[subset] = rows
    result["candidate_share"] = float(candidates.mean())
    return result


# -- drops -------------------------------------------------------------------------------------
def _audit_paths(args, dataset, mode):
    if dataset == "synthetic_ecg" and not args.no_reuse_modes_runs:
        found = sorted(glob.glob(os.path.join(args.work_dir, "modes", f"{dataset}_{args.configs[dataset]}",
                                              f"epoch_{mode}_s*", run_folder.AUDIT)))
        # exactly epoch_<mode>_s<seed> (epoch_erts_s* would also match epoch_erts_smrd_s0), finished runs only
        found = [f for f in found if re.fullmatch(rf"epoch_{mode}_s\d+", os.path.basename(os.path.dirname(f)))
                 and os.path.exists(run_folder.path(os.path.dirname(f), run_folder.SUMMARY))]
        if found:
            return found, "reused from benchmarks/modes.py"
    return None, None


def drop_shares(args, dataset, data) -> dict:
    """Share of unreliable samples among erts's low_focus drops and dbpd's confident drops."""
    import keras
    import numpy as np

    from erts_tf.training import run

    group, unreliable = unreliable_any(dataset, data.train)
    if group is None:
        return {"skipped": "no ground truth of unreliable samples"}
    result = {"ground_truth": group, "base_rate": float(unreliable.mean()), "n_train": data.train.n, "modes": {}}
    for mode, reason in (("erts", "low_focus"), ("dbpd", "confident")):
        paths, source = _audit_paths(args, dataset, mode)
        if paths is None:
            out = os.path.join(args.work_dir, NAME, f"{dataset}_{args.configs[dataset]}", f"audit_{mode}_s{args.seed}")
            keras.backend.clear_session()
            run.run(_config(args, dataset, out, mode, args.audit_epochs), data)
            paths, source = [run_folder.path(out, run_folder.AUDIT)], f"own run, {args.audit_epochs} epochs, seed {args.seed}"
        by_reason = {}
        for path in paths:
            with open(path, newline="") as f:
                for row in csv.DictReader(f):
                    if row["decision"] == "dropped":
                        by_reason.setdefault(row["reason"], []).append(int(row["sample_id"]))
        reasons = {}
        for r, ids in sorted(by_reason.items()):
            ids = np.asarray(ids)
            unique = np.unique(ids)
            reasons[r] = {"drop_events": int(len(ids)), "unreliable_share_of_events": float(unreliable[ids].mean()),
                          "unique_samples": int(len(unique)), "unreliable_share_of_unique": float(unreliable[unique].mean())}
        result["modes"][mode] = {"source": source, "runs": len(paths), "reason_of_interest": reason, "by_reason": reasons}
    return result


# -- output ------------------------------------------------------------------------------------
def _label(name: str) -> str:
    """A score's column label: ``-name`` (the sign of the AUROC), ``1 - p_true`` as it is."""
    return name if name == "1 - p_true" else "-" + name


def _datasets_run(result, lines: list[str]):
    """``(dataset, entry)`` of each dataset that ran; a ``NOT RUN`` line in ``lines`` for the others."""
    for dataset, entry in result["datasets"].items():
        if "error" in entry:
            lines.append(f"\n{dataset}: NOT RUN: {entry['error']}\n")
        else:
            yield dataset, entry


def tables(result) -> str:
    lines = []
    for dataset, entry in _datasets_run(result, lines):
        cfg = entry["config"]
        for subset in ("all", "candidates"):
            rows = entry["validity"][subset]
            names = list(next(iter(rows.values())).keys()) if rows else []
            title = ("all training samples" if subset == "all"
                     else f"dbpd candidates only (p_true < tau; {entry['validity']['candidate_share']:.0%} of the split)")
            lines.append(f"\n{dataset}/{cfg}: AUROC of -focus (unreliable = positive; > 0.5 means unreliable samples "
                         f"are LESS focused), {title}; model after {entry['model']['epochs_trained']} epochs, "
                         f"validation macro-F1 {common.fmt(entry['model'].get('validation_macro_f1_last'))}\n")
            body = []
            for group, row in rows.items():
                first = next(iter(row.values()))
                body.append([group, f"{first['n_pos']}/{first['n_neg']}", *[common.fmt_ci(row[k], ".2f") for k in names]])
            lines.append(common.markdown_table(["unreliable group", "n pos/neg", *map(_label, names)], body))
        drops = entry.get("drops")
        if drops and "modes" in drops:
            lines.append(f"\n{dataset}: what was dropped (ground truth: {drops['ground_truth']}; base rate "
                         f"{drops['base_rate']:.1%} of {drops['n_train']} training samples)\n")
            body = []
            for mode, m in drops["modes"].items():
                for reason, r in m["by_reason"].items():
                    mark = " <-" if reason == m["reason_of_interest"] else ""
                    body.append([f"{mode} ({m['source']}, {m['runs']} run{'s' if m['runs'] > 1 else ''})", reason + mark,
                                 str(r["drop_events"]), f"{r['unreliable_share_of_events']:.1%}",
                                 str(r["unique_samples"]), f"{r['unreliable_share_of_unique']:.1%}"])
            lines.append(common.markdown_table(["mode (source)", "drop reason", "drop events", "unreliable share",
                                                "unique samples", "unreliable share (unique)"], body, "llrrrr"))
    return "\n".join(lines)


def plot(result, path):
    plt = common.pyplot()
    entries = [(d, e) for d, e in result["datasets"].items() if "validity" in e]
    if not entries:
        return None
    fig, axes = plt.subplots(len(entries), 1, figsize=(12, 3.6 * len(entries)), squeeze=False)
    for ax, (dataset, entry) in zip(axes[:, 0], entries):
        rows = entry["validity"]["all"]
        groups = list(rows)
        names = list(next(iter(rows.values())).keys())
        width = 0.8 / len(names)
        for j, name in enumerate(names):
            xs, ys, errs = [], [], [[], []]
            for i, group in enumerate(groups):
                ci = rows[group][name]
                if ci["point"] is None:
                    continue
                xs.append(i + (j - len(names) / 2 + 0.5) * width)
                ys.append(ci["point"])
                errs[0].append(ci["point"] - ci["low"])
                errs[1].append(ci["high"] - ci["point"])
            ax.bar(xs, ys, width, yerr=errs, capsize=2, label=_label(name),
                   color=None if name != "1 - p_true" else "lightgray")
        ax.axhline(0.5, color="black", lw=0.8, ls=":")
        ax.set_xlim(-0.6, max(len(groups), 2) - 0.4)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("AUROC")
        ax.set_title(f"{dataset}/{entry['config']}: unreliable (positive) vs reliable, all training samples "
                     f"(model: validation macro-F1 {common.fmt(entry['model'].get('validation_macro_f1_last'), '.2f')})")
        ax.legend(fontsize=7, ncol=len(names))
    return common.save_figure(fig, path)


# -- over a run (--over_run) ------------------------------------------------------------------
def epoch_validity(entry, arrays, unreliable, focus_score, rounds, write):
    """A Keras callback: after every epoch, appends ``{"epoch", "val_macro_f1", "focus_recorded", "auroc"}``
    to ``entry["epochs"]`` (``auroc``: ``{score: CI}``, ``auroc_row``'s over the whole split ``arrays``
    plus ``focus_score`` as the training step recorded it this epoch), refreshes ``entry["summary"]``
    and calls ``write()``. ``unreliable``: ``(n,)`` bool, the positives; the rest are the negatives."""
    import keras

    class EpochValidity(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            model, state = self.model, self.model.state  # the run's ERTSModel
            auroc = auroc_row(score_split(model.cam_model, arrays), unreliable, ~unreliable, rounds)
            recorded = state.focus_epoch.numpy() == epoch
            auroc[focus_score + TRAINING_FORWARD] = auroc_ci(unreliable & recorded, ~unreliable & recorded,
                                                             -state.focus.numpy(), rounds)
            f1 = (logs or {}).get("val_macro_f1")
            entry["epochs"].append({"epoch": epoch, "val_macro_f1": None if f1 is None else float(f1),
                                    "focus_recorded": int(recorded.sum()), "auroc": auroc})
            entry["summary"] = summarize(entry["epochs"], focus_score)
            write()
            print(f"epoch {epoch}: validation macro-F1 {common.fmt(entry['epochs'][-1]['val_macro_f1'])}, "
                  f"AUROC -{focus_score} {common.fmt_ci(auroc[focus_score], '.2f')}", flush=True)

    return EpochValidity()


def summarize(epochs, focus_score) -> dict:
    """Per score, the maximum AUROC (first epoch reaching it) and the last epoch's; the epochs where the
    CI lower bound of ``focus_score`` (inference and training-forward views) exceeds 0.5."""
    scores = {}
    for name in epochs[-1]["auroc"]:
        points = [(e["auroc"][name]["point"], e["epoch"]) for e in epochs if e["auroc"][name]["point"] is not None]
        best, best_epoch = max(points, key=lambda p: p[0], default=(None, None))
        scores[name] = {"max": best, "max_epoch": best_epoch, "last": epochs[-1]["auroc"][name]["point"]}
    above = {name: [e["epoch"] for e in epochs if (e["auroc"][name]["low"] or 0.0) > 0.5]
             for name in (focus_score, focus_score + TRAINING_FORWARD)}
    return {"scores": scores, "ci_low_above_half": above}


def over_run(args) -> dict:
    """One full run per dataset (recipe, always_cam), focus validity after every epoch; the JSON is
    rewritten after each epoch."""
    import keras

    from erts_tf.training import run

    path = common.output_path(args, OVER_RUN)
    result = {"benchmark": OVER_RUN, "settings": dict(vars(args)), "recipe": RECIPE, "machine": common.machine(),
              "sign": SIGN, "datasets": {}}
    for dataset, entry, data in each_dataset(args, result):
        group, unreliable = unreliable_any(dataset, data.train)  # every "any" group's negatives: the rest
        if group is None:
            entry["error"] = "the training split has no ground truth of unreliable samples"
            continue
        out = os.path.join(args.work_dir, NAME, f"{dataset}_{args.configs[dataset]}", f"over_run_full_s{args.seed}")
        config = dataclasses.replace(_config(args, dataset, out, "full", args.epochs), always_cam=True, **RECIPE)
        entry.update(ground_truth=group, n_unreliable=int(unreliable.sum()), n_train=data.train.n,
                     focus_score=config.focus_score, run_dir=out, epochs=[])
        callback = epoch_validity(entry, data.train, unreliable, config.focus_score, args.rounds,
                                  lambda: common.write_json(path, result))
        print(f"{dataset}: full run, {args.epochs} epochs, validity after each", flush=True)
        keras.backend.clear_session()
        with common.Meter() as meter:
            summary = run.run(config, data, extra_callbacks=[callback])
        entry["run"] = {"best_epoch": summary["best_epoch"], "test_macro_f1": summary["test"]["macro_f1"],
                        "wall_s": meter.result["wall_s"], "cpu_s": meter.result["cpu_s"]}
        del data
        gc.collect()
    result["machine_end"] = {"loadavg": list(os.getloadavg())}
    return common.publish(args, OVER_RUN, result, over_run_tables(result), over_run_plot)


def over_run_tables(result) -> str:
    lines = []
    for dataset, entry in _datasets_run(result, lines):
        epochs = entry["epochs"]
        if not epochs:
            continue
        names = list(epochs[0]["auroc"])
        lines.append(f"\n{dataset}/{entry['config']}: AUROC per epoch, unreliable ({entry['ground_truth']}, "
                     f"{entry['n_unreliable']} of {entry['n_train']}) = positive, all training samples; "
                     f"one full run (recommended recipe, Grad-CAM every epoch)\n")
        body = [[str(e["epoch"]), common.fmt(e["val_macro_f1"]), *[common.fmt_ci(e["auroc"][k], ".2f") for k in names]]
                for e in epochs]
        lines.append(common.markdown_table(["epoch", "val macro-F1", *map(_label, names)], body))
        summary = entry["summary"]
        body = [[_label(k), f"{common.fmt(s['max'])} (epoch {s['max_epoch']})", common.fmt(s["last"])]
                for k, s in summary["scores"].items()]
        lines.append(f"\n{dataset}: summary over {len(epochs)} epochs\n")
        lines.append(common.markdown_table(["score", "max AUROC", "last epoch"], body))
        for name, found in summary["ci_low_above_half"].items():
            lines.append(f"\nepochs where the CI lower bound of {_label(name)} exceeds 0.5: "
                         f"{', '.join(map(str, found)) or 'none'}")
    return "\n".join(lines)


def over_run_plot(result, path):
    plt = common.pyplot()
    from matplotlib.ticker import MaxNLocator

    entries = [(d, e) for d, e in result["datasets"].items() if e.get("epochs")]
    if not entries:
        return None

    def values(cis, key):
        return [float("nan") if ci[key] is None else ci[key] for ci in cis]

    fig, axes = plt.subplots(len(entries), 1, figsize=(10, 3.6 * len(entries)), squeeze=False)
    for ax, (dataset, entry) in zip(axes[:, 0], entries):
        epochs = [e["epoch"] for e in entry["epochs"]]
        for name in entry["epochs"][0]["auroc"]:
            cis = [e["auroc"][name] for e in entry["epochs"]]
            line, = ax.plot(epochs, values(cis, "point"), marker="o", ms=3, label=_label(name),
                            color="lightgray" if name == "1 - p_true" else None)
            if name == entry["focus_score"]:
                ax.fill_between(epochs, values(cis, "low"), values(cis, "high"), color=line.get_color(), alpha=0.15)
        ax.plot(epochs, values(entry["epochs"], "val_macro_f1"), ls="--", color="black", label="validation macro-F1")
        ax.axhline(0.5, color="black", lw=0.8, ls=":")
        ax.set_ylim(0, 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("AUROC; macro-F1")
        ax.set_title(f"{dataset}/{entry['config']}: unreliable ({entry['ground_truth']}) vs reliable, all training "
                     f"samples, after each epoch (band: 95 % CI of -{entry['focus_score']})", fontsize=9)
        ax.legend(fontsize=7, ncol=4)
    return common.save_figure(fig, path)


def main(argv=None) -> dict:
    args = parse(argv)
    if args.render:
        import json

        result = json.loads(pathlib.Path(args.render).read_text())
        table, draw = (over_run_tables, over_run_plot) if result["benchmark"] == OVER_RUN else (tables, plot)
        result["table"] = table(result)
        print(result["table"])
        draw(result, pathlib.Path(args.render).with_suffix(".png"))
        return result
    common.quiet_tensorflow()
    if args.over_run:
        return over_run(args)
    import numpy as np

    started = time.perf_counter()
    result = {"benchmark": NAME, "settings": {k: v for k, v in vars(args).items()}, "machine": common.machine(),
              "sign": SIGN, "datasets": {}}
    for dataset, entry, data in each_dataset(args, result):
        positives, negatives = unreliable_groups(dataset, data.train)
        if not positives:
            entry["error"] = "the training split has no ground truth of unreliable samples"
            continue
        backbone, entry["model"] = train_to_filter_start(args, dataset, data)
        scores = score_split(cam_view(args.model, backbone), data.train)
        entry["validity"] = validity(args, scores, positives, negatives)
        entry["score_means"] = {
            group: {name: {"unreliable": float(np.mean(v[positives[group]])), "reliable": float(np.mean(v[negatives[group]]))}
                    for name, v in scores.items() if name != "correct"}
            for group in positives
        }
        if dataset in args.audit_datasets and args.audit_epochs > 0:
            entry["drops"] = drop_shares(args, dataset, data)
        print(f"{dataset}: done ({time.perf_counter() - started:.0f} s so far)", flush=True)
        del data, backbone
        gc.collect()
    result["total_wall_s"] = time.perf_counter() - started
    result["machine_end"] = {"loadavg": list(os.getloadavg())}
    return common.publish(args, NAME, result, tables(result), plot)


if __name__ == "__main__":
    main()
