"""Training recipes side by side: the reference's against the recommended one, mode full, per dataset.

Each dataset's recommended baseline is its shipped flagfile
``configs/<dataset>/recommended_full.cfg`` (the recommended recipe of
``configs/recipe.cfg``). The reference recipe is the same dataset, backbone,
batch size and epochs with the reference's training settings
(``configs/base.cfg``: AdamW at lr 3e-4 decayed 0.98 per epoch, no
augmentation, class-balanced weights without a cap) and its label set (on
MIT-BIH all five AAMI classes, Q included). Both run the same seeds for the
same epochs (``--epochs`` shortens both alike; the cosine schedule then spans
the shorter run).

Reported per recipe (mean over seeds; 95 % CIs are percentile bootstraps over
the test records of the seed-mean metric):
  - test macro-F1, over the classes present in the test split's labels;
  - the field's own metric: MIT-BIH DS2 sensitivity (Se, recall) and positive
    predictive value (PPV, precision) of S and V beats, and their F1; CinC
    2017's challenge F1 (the mean of the N, A and O F1, the noisy class ~ a
    class of its own that is not averaged); PTB-XL's one-vs-rest macro AUROC of
    the softmax outputs against the single label;
  - the train-validation gap: training macro-F1 (on the augmented kept
    records, in training mode) minus validation macro-F1, at the best epoch;
  - for a single-label recipe, the same test metrics at the operating point chosen on the validation
    split (per-class log-probability offsets that maximise validation macro-F1,
    ``erts_tf.metrics.macro_f1_optimal_offsets``), for the same models;
  - the majority-class level of each split (the macro-F1 of a model that says
    the most frequent class for every record), and the epochs after the first
    whose validation or test macro-F1 is not above it (the test split is scored
    after every epoch for this only; model selection uses validation alone).
Literature anchors (``ANCHORS``) are printed beside, each with what differs.

A learning curve (``--train_fractions``, e.g. ``0.25,0.5``): the recommended
recipe also trains on a class-stratified random part of the training split
(drawn per seed; validation and test unchanged), and the field metric is fitted
as ``a + b * ln(training records)`` over the fractions and the whole split, and
extrapolated to ``--size_factor`` times the split (PTB-XL: the subset holds
1/5 of the database). The extrapolation says how much of a gap to a
full-data figure the data size can explain; it is an estimate, not a result.

``--paired_with`` other baselines JSONs (comma-separated) of the same dataset and
test records (e.g. the recommended recipe on another backbone): each recipe both hold gets
the difference of every field metric, this JSON's seed mean minus the other's,
with a 95 % CI over the same bootstrap resamples of the test records (paired),
and the per-seed test macro-F1 differences of the seeds both ran.

Each run's record is written to ``baselines_<dataset>_runs/<recipe>_s<seed>.json``
as soon as it finishes; a rerun skips the records already there.

Usage:
  python benchmarks/baselines.py --dataset mitbih_arrhythmia
  python benchmarks/baselines.py --dataset cinc2017 --seeds 0,1,2
  python benchmarks/baselines.py --smoke                         # synthetic_ecg/tiny, 2 epochs, 1 seed
  python benchmarks/baselines.py --reaggregate benchmarks/results/baselines_cinc2017.json
  python benchmarks/baselines.py --dataset cinc2017 --model resnet1d5 \
      --paired_with benchmarks/results/baselines_cinc2017_operating_point.json

Writes benchmarks/results/baselines_<dataset>.json.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common  # noqa: E402

NAME = "baselines"
RECIPES = ("reference", "recommended")
SMOKE_FLAGFILE = "configs/quickstart.cfg"  # with --mode=full: the recommended recipe on synthetic data
# What the result JSON keeps of each run beside its record's file name (the runs folder holds the record).
RUN_HEADLINES = ("recipe", "seed", "train_fraction", "n_train", "test_macro_f1", "validation_macro_f1", "best_epoch",
                 "weights_epoch", "cpu_s")
# How many times more records the whole database holds than the subset in ../shared/data.
SUBSET_FACTOR = {"ptbxl": 21799 / 4359, "cinc2017": 8528 / 2842}
# The reference's input where the recommended baseline reads another dataset config: CinC 2017's first 9 s
# of each recording (the recommended baseline trains whole recordings on 9 s windows), MIT-BIH's one-beat
# MLII window (the recommended baseline adds the rhythm channel). Every reference run reads whole records
# (--window_s=0 --eval_window_stride_s=0).
REFERENCE_INPUT = {"cinc2017": ["--dataset_config=9s"], "mitbih_arrhythmia": ["--dataset_config=mlii"]}
# The field's metric of each dataset: "aami" (Se/PPV of S and V), "challenge2017" (mean F1 of N, A, O), "auroc".
FIELD_METRIC = {"mitbih_arrhythmia": "aami", "cinc2017": "challenge2017", "ptbxl": "auroc"}
# The metrics each kind adds to macro-F1 (``field_round_values``), with their table headers.
FIELD_COLUMNS = {
    "aami": [("S_se", "S Se"), ("S_ppv", "S PPV"), ("S_f1", "S F1"), ("V_se", "V Se"), ("V_ppv", "V PPV"),
             ("V_f1", "V F1")],
    "challenge2017": [("challenge_f1", "challenge F1 (N, A, O)")],
    "auroc": [("macro_auroc", "macro AUROC")],
}
FIELD_METRIC_NAMES = {kind: tuple(key for key, _ in columns) for kind, columns in FIELD_COLUMNS.items()}
ANCHORS = {
    "mitbih_arrhythmia": [
        {"source": "de Chazal et al. 2004 (linear discriminants)", "S_se": 0.76, "S_ppv": 0.38, "V_se": 0.77,
         "V_ppv": 0.82, "differs": "same inter-patient DS1/DS2 split and AAMI classes; hand-crafted features"},
        {"source": "Llamedo & Martinez 2011", "S_se": 0.77, "S_ppv": 0.39, "V_se": 0.81, "V_ppv": 0.87,
         "differs": "same DS1/DS2 split; two leads; Q left out"},
        {"source": "Niu et al. 2020 (CNN on symbolic sequences)", "S_f1": 0.77, "V_f1": 0.90,
         "differs": "same DS1/DS2 split; beat context beyond one window"},
    ],
    "cinc2017": [
        {"source": "PhysioNet/CinC 2017 winners (hidden test set)", "challenge_f1": 0.83,
         "differs": "all 8,528 training records (ours: every third, 2,842) and the hidden test set"},
        {"source": "Andreotti et al. 2017, CNN, 5-fold CV on the training set", "challenge_f1": 0.72,
         "differs": "all 8,528 records, cross-validation instead of one split"},
    ],
    "ptbxl": [
        {"source": "PTB-XL benchmark leaderboard, resnet1d_wang, superdiagnostic", "macro_auroc": 0.930,
         "differs": "all 21,799 records (ours: 1/5), multi-label sigmoid outputs against the multi-hot targets "
                    "(ours: one softmax label), 2.5 s crops with window aggregation"},
    ],
}


def parse(argv=None):
    parser = common.base_parser(__doc__, NAME)
    parser.add_argument("--dataset", default=None, help="mitbih_arrhythmia, cinc2017 or ptbxl (synthetic_ecg with --smoke)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2; 0 with --smoke)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recommended flagfile's (2 with --smoke)")
    parser.add_argument("--model", default=None, help="backbone (default: the recommended flagfile's)")
    parser.add_argument("--flagfile", default=None,
                        help="the recommended recipe's flagfile (default configs/<dataset>/recommended_full.cfg), "
                             "e.g. configs/ptbxl/resnet1d_full.cfg")
    parser.add_argument("--dataset_config", default=None,
                        help="dataset config (default: the recommended flagfile's; the output name gains it)")
    parser.add_argument("--train_fractions", default="",
                        help="learning curve: also train the recommended recipe on these fractions of the training split")
    parser.add_argument("--fraction_seeds", default=None,
                        help="seeds of the learning-curve runs (default: every seed of --seeds)")
    parser.add_argument("--size_factor", type=float, default=None,
                        help="extrapolate the learning curve to this many times the training split (default: "
                             "the dataset's full/subset ratio, 5 for PTB-XL, 3 for CinC 2017)")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--rounds", type=int, default=None, help="bootstrap rounds (default 1000; 200 with --smoke)")
    parser.add_argument("--keep_runs", action="store_true", help="keep the run directories under --work_dir")
    parser.add_argument("--runs_dir", default=None, help="folder of the per-run records (default <output stem>_runs)")
    parser.add_argument("--reaggregate", default=None, help="recompute the tables of an existing baselines JSON")
    parser.add_argument("--paired_with", default=None,
                        help="other baselines JSONs (comma-separated) of the same test records: paired differences "
                             "against their recipes")
    args = parser.parse_args(argv)
    if args.reaggregate:
        return args
    args.dataset = args.dataset or ("synthetic_ecg" if args.smoke else None)
    if args.dataset is None:
        parser.error("--dataset is required (or --smoke)")
    args.flagfile = args.flagfile or (
        SMOKE_FLAGFILE if args.dataset == "synthetic_ecg" else f"configs/{args.dataset}/recommended_full.cfg")
    if not (common.REPO_ROOT / args.flagfile).exists():
        parser.error(f"no recommended baseline for --dataset={args.dataset} ({args.flagfile} does not exist)")
    args.seeds = [int(s) for s in (args.seeds or ("0" if args.smoke else "0,1,2")).split(",")]
    args.epochs = args.epochs or (2 if args.smoke else None)
    args.rounds = args.rounds or (200 if args.smoke else 1000)
    args.recipes = [r for r in args.recipes.split(",") if r]
    unknown = [r for r in args.recipes if r not in RECIPES]
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {', '.join(RECIPES)}")
    args.train_fractions = [float(f) for f in args.train_fractions.split(",") if f]
    if any(not 0 < f < 1 for f in args.train_fractions):
        parser.error(f"--train_fractions must lie in (0, 1), got {args.train_fractions}")
    args.fraction_seeds = ([int(x) for x in args.fraction_seeds.split(",") if x] if args.fraction_seeds is not None
                           else args.seeds)
    args.size_factor = args.size_factor or SUBSET_FACTOR.get(args.dataset, 1.0)
    if args.output is None:
        suffix = f"_{args.dataset_config}" if args.dataset_config else ""
        args.output = str(common.RESULTS_DIR / f"{NAME}_{args.dataset}{suffix}{'_smoke' if args.smoke else ''}.json")
    return args


def recipe_config(args, recipe: str, seed: int, output_dir: str):
    """The ``RunConfig`` of ``recipe`` on ``args.dataset``, parsed from the shipped flagfiles with
    erts-tf's own flag definitions (so the benchmark trains exactly what a user's command would)."""
    common_args = [f"--output_dir={output_dir}", f"--seed={seed}", "--overwrite", "--verbose=0", "--noreport"]
    argv = [f"--flagfile={args.flagfile}"]
    if args.smoke:
        argv += ["--dataset_config=tiny", "--mode=full"]
    if args.model:
        argv.append(f"--model={args.model}")
    if args.dataset_config:
        argv.append(f"--dataset_config={args.dataset_config}")
    if args.manual_dir and args.dataset != "synthetic_ecg":
        argv.append(f"--manual_dir={args.manual_dir}")
    if args.data_dir:
        argv.append(f"--data_dir={args.data_dir}")
    os.makedirs(os.path.dirname(output_dir), exist_ok=True)
    recommended = common.flagfile_config([*argv, *common_args])
    epochs = args.epochs or recommended.epochs
    if recipe == "recommended":
        return common.flagfile_config([*argv, f"--epochs={epochs}", *common_args])
    # the reference's training settings, label set and input on the same data, backbone, batch and epochs
    return common.flagfile_config([*argv, "--flagfile=configs/base.cfg", *REFERENCE_INPUT.get(args.dataset, []),
                                   "--window_s=0", "--eval_window_stride_s=0", f"--model={recommended.model}",
                                   f"--batch_size={recommended.batch_size}", f"--epochs={epochs}", "--mode=full",
                                   "--exclude_classes=", *common_args])


# -- metrics of one run's test predictions --------------------------------------------------------
def majority_macro_f1(labels) -> float:
    """Macro-F1 (over the classes present in ``labels``) of predicting the most frequent class for all."""
    import numpy as np

    counts = np.bincount(np.asarray(labels, int))
    present = counts[counts > 0]
    share = counts.max() / counts.sum()
    return float(2 * share / (1 + share) / len(present))


def field_rounds(kind, labels, preds_by_seed, class_names, rounds, probs_by_seed=None) -> dict:
    """The field metrics of ``kind`` as ``{name: {"point", "low", "high"}}``, each the seed mean,
    with percentile CIs over ``rounds`` bootstrap resamples of the test records (``field_round_values``)."""
    from erts_tf import bootstrap

    point, by_round = field_round_values(kind, labels, preds_by_seed, class_names, rounds, probs_by_seed)
    out = {}
    for key, value in point.items():
        low, high = bootstrap.percentile_interval(by_round[key])
        out[key] = {"point": value, "low": low, "high": high}
    return out


def field_round_values(kind, labels, preds_by_seed, class_names, rounds, probs_by_seed=None) -> tuple[dict, dict]:
    """``(point, by_round)``: each field metric of ``kind`` (macro-F1 and the field's own), the seed mean, on
    all the records (a float) and on each of ``rounds`` bootstrap resamples of them (``(rounds,)``). The
    resamples depend on the number of records alone, so two calls on the same records are paired.

    Args:
      labels: ``(n,)`` class indices.
      preds_by_seed: per seed, ``(n,)`` predicted class indices.
      probs_by_seed: per seed, ``(n, n_classes)`` probabilities (``kind="auroc"`` only).
    """
    import numpy as np

    from erts_tf import bootstrap, metrics

    labels = np.asarray(labels, np.int64)
    n_classes = len(class_names)
    index_of = {name: i for i, name in enumerate(class_names)}
    present = metrics.present_classes(labels, n_classes)  # macro-F1 over the classes present

    def per_round(index):
        values = {}
        for s, pred in enumerate(preds_by_seed):
            pred = np.asarray(pred, np.int64)
            prf = metrics.prf_by_round(labels[index], pred[index], n_classes)
            seed_values = {"macro_f1": prf["f1"][:, present].mean(axis=1)}
            if kind == "aami":
                for name in ("S", "V"):
                    c = index_of[name]
                    seed_values.update({f"{name}_se": prf["recall"][:, c], f"{name}_ppv": prf["precision"][:, c],
                                        f"{name}_f1": prf["f1"][:, c]})
            elif kind == "challenge2017":
                seed_values["challenge_f1"] = prf["f1"][:, [index_of[n] for n in ("N", "A", "O")]].mean(axis=1)
            elif kind == "auroc":
                probs = np.asarray(probs_by_seed[s], np.float64)
                auroc = np.stack([bootstrap.auroc_by_rank(labels[index] == c, probs[index, c])
                                  for c in range(n_classes)], axis=1)
                seed_values["macro_auroc"] = np.nanmean(auroc, axis=1)
            for key, v in seed_values.items():
                values.setdefault(key, []).append(v)
        return {k: np.mean(v, axis=0) for k, v in values.items()}

    point = per_round(np.arange(len(labels))[None])
    chunks = [per_round(index) for index in bootstrap.resample_chunks(len(labels), rounds, 0)]
    return ({key: float(v[0]) for key, v in point.items()},
            {key: np.concatenate([c[key] for c in chunks]) for key in point})


def stratified_part(labels, fraction: float, seed: int):
    """``(k,)`` sorted positions: ``round(fraction * count)`` records (at least 1) of each class, drawn
    at random with ``np.random.default_rng(seed)``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    parts = [rng.choice(np.flatnonzero(labels == c), max(1, round(fraction * (labels == c).sum())), replace=False)
             for c in np.unique(labels)]
    return np.sort(np.concatenate(parts))


def learning_curve(rows, metric: str, size_factor: float) -> dict | None:
    """Least-squares fit of ``metric`` (seed mean) against ln(training records) over the recommended
    rows, and its value at ``size_factor`` times the whole split (``common.log_linear_fit``)."""
    fit = common.log_linear_fit([(r["n_train"], r["metrics"][metric]["point"]) for k, r in rows.items()
                                 if k.startswith("recommended") and r.get("n_train")], size_factor)
    return None if fit is None else {"metric": metric, **fit}


def test_each_epoch_callback(test, batch_size: int):
    """A Keras callback that scores ``test`` (``SplitArrays``) with the backbone after every epoch and
    keeps the macro-F1 values in its ``values`` list (epoch order)."""
    import keras

    from erts_tf import inference, metrics

    class TestEachEpoch(keras.callbacks.Callback):
        values: list

        def on_train_begin(self, logs=None):
            self.values = []

        def on_epoch_end(self, epoch, logs=None):
            probs = inference.split_probs(self.model.backbone, test, batch_size)
            self.values.append(metrics.classification_metrics(test.label, probs, test.class_names)["macro_f1"])

    return TestEachEpoch()


def _gap_at_kept(record) -> float | None:
    """Training minus validation macro-F1 at the epoch whose weights the run kept."""
    epochs = {e["epoch"]: e for e in record["epochs"]}
    kept = epochs.get(record.get("weights_epoch", record["best_epoch"]))  # records before --keep_weights: best
    if not kept or kept.get("macro_f1") is None or kept.get("val_macro_f1") is None:
        return None
    return kept["macro_f1"] - kept["val_macro_f1"]


def aggregate(result) -> dict:
    import numpy as np

    rows = {}
    kind = FIELD_METRIC.get(result["settings"]["dataset"])
    for recipe in dict.fromkeys(r["recipe"] for r in result["runs"]):
        split = result["splits"][recipe.split("_f")[0]]
        group = sorted((r for r in result["runs"] if r["recipe"] == recipe), key=lambda r: r["seed"])
        probs = [r["test_probs"] for r in group] if kind == "auroc" else None
        field = field_rounds(kind, split["test_labels"], [r["test_pred"] for r in group], split["class_names"],
                             result["settings"]["rounds"], probs)
        level = split["majority_macro_f1"]["validation"]
        not_above = sorted({e["epoch"] for r in group for e in r["epochs"]
                            if e["epoch"] >= 1 and e.get("val_macro_f1") is not None and e["val_macro_f1"] <= level})
        test_level = split["majority_macro_f1"]["test"]
        test_not_above = sorted({epoch for r in group for epoch, v in enumerate(r.get("test_macro_f1_by_epoch") or [])
                                 if epoch >= 1 and v <= test_level})
        gaps = [g for g in map(_gap_at_kept, group) if g is not None]
        rows[recipe] = {
            "seeds": [r["seed"] for r in group], "metrics": field,
            "test_macro_f1_by_seed": [r["test_macro_f1"] for r in group],
            "validation_macro_f1_by_epoch": {r["seed"]: [e.get("val_macro_f1") for e in r["epochs"]] for r in group},
            "best_epochs": [r["best_epoch"] for r in group],
            "train_validation_gap": float(np.mean(gaps)) if gaps else None,
            "epochs_not_above_majority": not_above,
            "test_epochs_not_above_majority": test_not_above if any("test_macro_f1_by_epoch" in r for r in group) else None,
            "test_macro_f1_by_epoch": {r["seed"]: r.get("test_macro_f1_by_epoch") for r in group},
            "cpu_s": float(np.mean([r["cpu_s"] for r in group])),
            "n_train": group[0].get("n_train") or split["sizes"]["train"],
        }
        if all("test_pred_validation_offsets" in r for r in group):  # the operating point chosen on validation
            rows[recipe]["at_validation_offsets"] = {
                "metrics": field_rounds(kind, split["test_labels"], [r["test_pred_validation_offsets"] for r in group],
                                        split["class_names"], result["settings"]["rounds"], probs),
                "test_macro_f1_by_seed": [r["test_macro_f1_validation_offsets"] for r in group],
                "offsets_by_seed": {r["seed"]: r["validation_offsets"] for r in group},
            }
    metric = {"aami": "macro_f1", "challenge2017": "challenge_f1", "auroc": "macro_auroc"}.get(kind, "macro_f1")
    curve = learning_curve(rows, metric, result["settings"].get("size_factor") or 1.0)
    for other in (result["settings"].get("paired_with") or "").split(","):
        if other:
            paired_differences(result, rows, kind, other)
    return {"rows": rows, "field_metric": kind, "learning_curve": curve}


def paired_differences(result, rows: dict, kind: str, other_path: str) -> None:
    """Appends to ``rows[recipe]["minus_paired"]`` for each recipe ``other_path`` (a baselines JSON, relative to the
    repository root) also holds: every field metric's seed mean here minus there, on the same bootstrap
    resamples of the same test records, and the test macro-F1 differences of the seeds both ran."""
    from erts_tf import bootstrap

    path = pathlib.Path(other_path)
    path = path if path.is_absolute() else common.REPO_ROOT / path
    other = json.loads(path.read_text())
    other_runs = common.read_records(other, path)
    rounds = result["settings"]["rounds"]
    for recipe, row in rows.items():
        theirs = sorted((r for r in other_runs if r["recipe"] == recipe), key=lambda r: r["seed"])
        if not theirs:
            continue
        split, their_split = result["splits"][recipe.split("_f")[0]], other["splits"][recipe.split("_f")[0]]
        if split["test_labels"] != their_split["test_labels"] or split["class_names"] != their_split["class_names"]:
            raise ValueError(f"--paired_with {other_path}: its {recipe} test records are not these")
        ours = sorted((r for r in result["runs"] if r["recipe"] == recipe), key=lambda r: r["seed"])
        values = []
        for group in (ours, theirs):
            probs = [r["test_probs"] for r in group] if kind == "auroc" else None
            values.append(field_round_values(kind, split["test_labels"], [r["test_pred"] for r in group],
                                             split["class_names"], rounds, probs))
        (point, by_round), (their_point, their_by_round) = values
        differences = {}
        for key in point:
            low, high = bootstrap.percentile_interval(by_round[key] - their_by_round[key])
            differences[key] = {"point": point[key] - their_point[key], "low": low, "high": high}
        their_by_seed = {r["seed"]: r["test_macro_f1"] for r in theirs}
        row.setdefault("minus_paired", []).append({
            "against": other_path, "their_seeds": [r["seed"] for r in theirs], "metrics": differences,
            "test_macro_f1_by_seed": {r["seed"]: r["test_macro_f1"] - their_by_seed[r["seed"]]
                                      for r in ours if r["seed"] in their_by_seed},
        })


# -- output ---------------------------------------------------------------------------------------
def input_of(config: dict) -> str:
    """What a recipe trains on: the dataset config, and its windows if any (``config``: a ``RunConfig`` as JSON)."""
    if not config.get("window_s"):
        return f"{config['dataset_config']}, whole records"
    return (f"{config['dataset_config']}, {config['window_s']:g} s crops, windows every "
            f"{config.get('eval_window_stride_s') or config['window_s'] / 2:g} s ({config.get('window_aggregate', 'mean')})")


def tables(result) -> str:
    agg = result["aggregate"]
    columns = FIELD_COLUMNS.get(agg["field_metric"], [])
    s = result["settings"]
    lines = [f"\n{s['dataset']} ({result['flagfile']}), mode full, {len(s['seeds'])} seed(s), "
             f"{result['epochs']} epochs; seed means, 95 % bootstrap CIs over the test records\n"]
    body = []
    for recipe, row in agg["rows"].items():
        split = result["splits"][recipe.split("_f")[0]]
        m = row["metrics"]
        body.append([recipe, input_of(result["configs"][recipe.split("_f")[0]]), ",".join(split["class_names"]),
                     common.fmt_ci(m["macro_f1"]),
                     *(common.fmt_ci(m[k]) for k, _ in columns),
                     common.fmt(row["train_validation_gap"], "+.3f"),
                     f"{split['majority_macro_f1']['validation']:.3f} / {split['majority_macro_f1']['test']:.3f}",
                     ",".join(map(str, row["epochs_not_above_majority"])) or "none",
                     "not scored" if row.get("test_epochs_not_above_majority") is None
                     else ",".join(map(str, row["test_epochs_not_above_majority"])) or "none",
                     ",".join(map(str, row["best_epochs"]))])
        for paired in row.get("minus_paired", []):
            by_seed = ", ".join(f"{d:+.3f}" for d in paired["test_macro_f1_by_seed"].values())
            body.append([f"{recipe} minus {paired['against']} (paired)", f"test macro-F1 per seed {by_seed}", "",
                         common.fmt_ci(paired["metrics"]["macro_f1"], "+.3f"),
                         *(common.fmt_ci(paired["metrics"][k], "+.3f") for k, _ in columns), "", "", "", "", ""])
        tuned = row.get("at_validation_offsets")
        if tuned:
            body.append([f"{recipe}, operating point chosen on validation", "the same models", "",
                         common.fmt_ci(tuned["metrics"]["macro_f1"]),
                         *(common.fmt_ci(tuned["metrics"][k]) for k, _ in columns), "", "", "", "", ""])
    lines.append(common.markdown_table(
        ["recipe", "input", "classes", "test macro-F1", *(title for _, title in columns), "train-val gap",
         "majority level val / test", "epochs >=1 val <= majority", "epochs >=1 test <= majority",
         "best epoch"], body))
    curve = agg.get("learning_curve")
    if curve:
        points = ", ".join(f"{p['value']:.3f} at {p['n_train']}" for p in curve["points"])
        lines.append(f"\nlearning curve ({curve['metric']}, recommended recipe): {points} training records; "
                     f"{curve['slope_per_ln_records'] * math.log(2):+.3f} per doubling of the records; extrapolated to "
                     f"{curve['extrapolated_n_train']} records ({curve['size_factor']:.1f}x): "
                     f"{curve['extrapolated_value']:.3f} (an estimate from a log-linear fit)")
    anchors = ANCHORS.get(s["dataset"], [])
    if anchors:
        lines.append("\nliterature anchors (not the same data or protocol; see 'differs')\n")
        keys = [k for k, _ in columns] + ["macro_auroc", "challenge_f1"]
        keys = list(dict.fromkeys(k for k in keys if any(k in a for a in anchors)))
        lines.append(common.markdown_table(
            ["source", *keys, "differs"],
            [[a["source"], *(common.fmt(a.get(k), ".2f") for k in keys), a["differs"]] for a in anchors],
            "l" + "r" * len(keys) + "l"))
    return "\n".join(lines)


def _split_facts(data) -> dict:
    return {"class_names": list(data.test.class_names), "test_labels": data.test.label.astype(int).tolist(),
            "sizes": {"train": data.train.n, "validation": data.validation.n, "test": data.test.n},
            "train_counts": {n: int((data.train.label == i).sum()) for i, n in enumerate(data.train.class_names)},
            "majority_macro_f1": {"validation": majority_macro_f1(data.validation.label),
                                  "test": majority_macro_f1(data.test.label)}}


def main(argv=None) -> dict:
    args = parse(argv)
    if args.reaggregate:
        path = pathlib.Path(args.reaggregate)
        written = json.loads(path.read_text())
        result = {**written, "runs": common.read_records(written, path)}
        result["aggregate"] = written["aggregate"] = aggregate(result)
        text = tables(result)
        print(text)
        common.write_json(path, written)
        return result
    common.quiet_tensorflow()
    import dataclasses

    import modes

    from erts_tf.data import pipeline
    from erts_tf.training import run

    started = time.perf_counter()
    machine_before = common.machine()
    runs_dir = common.runs_dir(args, NAME)
    store_probs = FIELD_METRIC.get(args.dataset) == "auroc"
    records, files, splits, configs, data_of = [], [], {}, {}, {}
    jobs = [(recipe, None) for recipe in args.recipes] + [("recommended", f) for f in args.train_fractions]
    for seed in args.seeds:  # seed-major, so that a stopped benchmark has both recipes of the first seeds
        for recipe, fraction in jobs:
            if fraction is not None and seed not in args.fraction_seeds:
                continue
            name = recipe if fraction is None else f"{recipe}_f{fraction:g}"
            run_dir = os.path.join(args.work_dir, NAME, f"{args.dataset}_{args.dataset_config or 'default'}", f"{name}_s{seed}")
            config = recipe_config(args, recipe, seed, run_dir)
            configs[recipe] = config.to_json()
            if recipe not in data_of:  # the label set may differ between recipes (MIT-BIH's Q)
                data_of[recipe] = run.load_data(config)
                splits[recipe] = _split_facts(data_of[recipe])
            data = data_of[recipe]
            if fraction is not None:  # validation and test stay whole
                part = stratified_part(data.train.label, fraction, seed)
                data = dataclasses.replace(data, train=pipeline.take_samples(data.train, part))
            path = runs_dir / f"{name}_s{seed}.json"
            files.append(path.name)
            if path.exists():
                records.append(json.loads(path.read_text()))
                print(f"{name:<18} seed {seed}: reused {path}", flush=True)
                continue
            tester = test_each_epoch_callback(data.test, config.batch_size)
            record = {"recipe": name, "train_fraction": fraction, "n_train": data.train.n,
                      **modes.measured_run(config, data, "full", args.rounds, args.keep_runs, store_probs, [tester])}
            record["test_macro_f1_by_epoch"] = tester.values
            common.write_json(path, record)
            records.append(record)
            print(f"{name:<18} seed {seed}: test macro-F1 {record['test_macro_f1']:.3f} (best epoch "
                  f"{record['best_epoch']}), validation {record['validation_macro_f1']:.3f}, "
                  f"cpu {record['cpu_s']:.0f}s", flush=True)
    result = {
        "benchmark": NAME,
        "settings": {k: v for k, v in vars(args).items()},
        "flagfile": args.flagfile,
        "epochs": next(iter(configs.values()))["epochs"],
        "configs": configs,
        "splits": splits,
        "anchors": ANCHORS.get(args.dataset, []),
        "machine": machine_before,
        "total_wall_s": time.perf_counter() - started,
        "runs": records,
    }
    result["aggregate"] = aggregate(result)
    written = common.naming_records(result, common.output_path(args, NAME), runs_dir, files, RUN_HEADLINES)
    return common.publish(args, NAME, result, tables(result), written=written)


if __name__ == "__main__":
    main()
