"""PTB-XL as its benchmark scores it: multi-label runs, test macro-AUC with its CI beside the leaderboard.

Each run is the recommended windowed baseline (``--flagfile``, default
``configs/ptbxl/recommended_full.cfg``: mode full, 2.5 s crops, windows
every 1.25 s) with a label set's flagfile (``configs/ptbxl/superdiagnostic.cfg``
or ``configs/ptbxl/rhythm.cfg``: ``--task=multi``, sigmoid outputs, BCE with
bounded positive weights) and the benchmark's window rule
(``--window_aggregate=max``), for each ``--models`` backbone and seed. Folds
1-8 train, 9 validation (best epoch by validation macro-AUC; F1 thresholds),
10 test.

Reported per (label set, backbone, mode, training fraction), mean over seeds:
test macro-AUC (the leaderboard's metric) with a 95 % percentile bootstrap CI
over the test records of the seed-mean macro-AUC, per-class AUC, macro-F1 at
0.5 and at per-class thresholds chosen on validation, the total-work ratio, and
the leaderboard's figure for the backbone (Strodthoff et al. 2021, full
PTB-XL). The leaderboard's figures are NOT the same data: our subset holds 1/5
of the records, so a lower score is expected.

Options:
  ``--train_fractions 0.25,0.5``: a learning curve; the same runs also train
    on a random part of the training split (records drawn per seed; validation
    and test unchanged), beside the whole split.
  ``--selection``: also the recommended selection (``configs/recommended_selection.cfg``;
    ``--selection_mode`` another mode) on the same recipe, beside full: its
    macro-AUC and total-work ratio, and the macro-AUC difference to full per seed.

Each run's record is written to ``<output stem>_runs/<name>.json`` as soon as it
finishes; a rerun reuses the records already there. The JSON names each record
by its file (``runs_dir`` relative to the JSON) with a few headline fields;
``common.read_records`` reads the records back.

Usage:
  python benchmarks/multilabel.py --models resnet1d --label_sets superdiagnostic --seeds 0
  python benchmarks/multilabel.py --models resnet1d,xresnet1d101,inception1d --label_sets superdiagnostic,rhythm
  python benchmarks/multilabel.py --models resnet1d --train_fractions 0.25,0.5
  python benchmarks/multilabel.py --models resnet1d --selection --seeds 0,1,2
  python benchmarks/multilabel.py --smoke        # 2 epochs, seed 0, 200 bootstrap rounds: only checks it runs

Writes benchmarks/results/multilabel.json (its table under "table").
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

NAME = "multilabel"
LABEL_SETS = {"superdiagnostic": "configs/ptbxl/superdiagnostic.cfg", "rhythm": "configs/ptbxl/rhythm.cfg"}
DEFAULT_FLAGFILE = "configs/ptbxl/recommended_full.cfg"
SELECTION_FLAGFILE = "configs/recommended_selection.cfg"
# The public leaderboard (Strodthoff et al. 2021, helme/ecg_ptbxl_benchmarking): macro-AUC on fold 10 of the
# whole database, by label set and our backbone name -> (the leaderboard's model, its macro-AUC).
LEADERBOARD = {
    "superdiagnostic": {"resnet1d": ("resnet1d_wang", 0.930), "xresnet1d101": ("xresnet1d101", 0.928),
                        "inception1d": ("inception1d", 0.921)},
    "rhythm": {"xresnet1d101": ("xresnet1d101", 0.957)},
}
# The fields of a run the JSON keeps beside its record's file name (the record, in the runs folder, has them all).
RUN_HEADLINES = ("name", "label_set", "model", "mode", "seed", "train_fraction", "test_macro_auc", "total_work_ratio",
                 "cpu_s")
LEADERBOARD_NOTE = ("not the same data: our subset holds 1/5 of the records (the leaderboard trains and tests on "
                    "the whole of PTB-XL), so a lower score is expected")


def parse(argv=None):
    parser = common.base_parser(__doc__, NAME)
    parser.add_argument("--models", default="resnet1d", help="comma-separated backbones (registry names)")
    parser.add_argument("--label_sets", default="superdiagnostic", help=f"comma-separated: {', '.join(LABEL_SETS)}")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 0)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the flagfile's (2 with --smoke)")
    parser.add_argument("--flagfile", default=DEFAULT_FLAGFILE, help="the baseline recipe's flagfile")
    parser.add_argument("--train_fractions", default="", help="learning curve: also these fractions of the training split")
    parser.add_argument("--selection", action="store_true", help="also the recommended selection beside full")
    parser.add_argument("--selection_mode", default=None, help="with --selection: this mode instead of the flagfile's")
    parser.add_argument("--rounds", type=int, default=None, help="bootstrap rounds (default 1000; 200 with --smoke)")
    parser.add_argument("--keep_runs", action="store_true", help="keep the run directories under --work_dir")
    parser.add_argument("--runs_dir", default=None, help="folder of the per-run records (default <output stem>_runs)")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.label_sets = [s for s in args.label_sets.split(",") if s]
    unknown = [s for s in args.label_sets if s not in LABEL_SETS]
    if unknown:
        parser.error(f"unknown label sets {unknown}; choose from {', '.join(LABEL_SETS)}")
    args.seeds = [int(s) for s in (args.seeds or "0").split(",")]
    args.epochs = args.epochs or (2 if args.smoke else None)
    args.rounds = args.rounds or (200 if args.smoke else 1000)
    args.train_fractions = [float(f) for f in args.train_fractions.split(",") if f]
    if any(not 0 < f < 1 for f in args.train_fractions):
        parser.error(f"--train_fractions must lie in (0, 1), got {args.train_fractions}")
    if args.selection_mode and not args.selection:
        parser.error("--selection_mode needs --selection")
    if args.output is None:
        args.output = str(common.RESULTS_DIR / f"{NAME}{'_smoke' if args.smoke else ''}.json")
    return args


def run_config(args, label_set: str, model: str, selection: bool, seed: int, output_dir: str):
    """The ``RunConfig`` of one run, parsed from the shipped flagfiles with erts-tf's own flags."""
    from erts_tf import flags as erts_flags

    fl = erts_flags.FLAGS
    argv = [f"--flagfile={args.flagfile}", f"--flagfile={LABEL_SETS[label_set]}", "--window_aggregate=max",
            f"--model={model}"]
    if selection:
        argv.append(f"--flagfile={SELECTION_FLAGFILE}")
        if args.selection_mode:
            argv.append(f"--mode={args.selection_mode}")
    if args.epochs:
        argv.append(f"--epochs={args.epochs}")
    if args.manual_dir:
        argv.append(f"--manual_dir={args.manual_dir}")
    if args.data_dir:
        argv.append(f"--data_dir={args.data_dir}")
    os.makedirs(os.path.dirname(output_dir), exist_ok=True)
    cwd = os.getcwd()
    os.chdir(common.REPO_ROOT)  # the flagfiles name each other relative to the repository root
    try:
        fl.unparse_flags()
        fl([NAME, *argv, f"--output_dir={output_dir}", f"--seed={seed}", "--overwrite", "--verbose=0", "--noreport"])
        return erts_flags.run_config()
    finally:
        os.chdir(cwd)


def train_part(labels, fraction: float, seed: int):
    """``(k,)`` sorted positions: ``round(fraction * n)`` records (at least one) drawn at random with
    ``np.random.default_rng(seed)`` (multi-hot labels have no single class to stratify by)."""
    import numpy as np

    n = len(labels)
    return np.sort(np.random.default_rng(seed).choice(n, max(1, round(fraction * n)), replace=False))


def measure(config, data, rounds: int, keep_runs: bool) -> dict:
    """Trains ``config`` on ``data``; its record: test macro-AUC with CI, per-class AUC, F1s, cost, time."""
    import shutil

    import keras
    import numpy as np

    from erts_tf import bootstrap, inference, run_folder
    from erts_tf.training import run

    keras.backend.clear_session()
    with common.Meter() as meter:
        summary = run.run(config, data)
    probs = inference.split_probs(run_folder.load_model(config.output_dir), data.test, 256, "sigmoid")
    ci = bootstrap.multilabel_bootstrap(data.test.label, probs, data.test.class_names, rounds=rounds, seed=0)
    test, cost = summary["test"], summary["cost"]
    record = {
        "settings": config.to_json(), "n_train": data.train.n, "best_epoch": summary["best_epoch"],
        "test_macro_auc": test["macro_auroc"], "test_macro_auc_ci": ci["macro_auroc"],
        "test_per_class_auc": test["per_class_auroc"], "validation_macro_auc": summary["validation"]["macro_auroc"],
        "test_macro_f1_at_0.5": test["macro_f1"], "test_macro_f1_validation_thresholds": test["tuned"]["macro_f1"],
        "thresholds": test["tuned"]["thresholds"], "total_work_ratio": cost["total_work_ratio"],
        "effective_epochs": cost["effective_epochs"], "cost": cost, "run_wall_s": meter.result["wall_s"],
        "cpu_s": meter.result["cpu_s"], "rss_peak_bytes": meter.result["rss_peak_bytes"],
        "epochs": [{k: e.get(k) for k in ("epoch", "phase", "kept", "backward", "loss", "val_loss", "val_macro_auc",
                                          "val_macro_f1", "train_s")} for e in summary["epochs"]],
        "test_probs": np.round(probs, 5).tolist(),
    }
    if not keep_runs:
        shutil.rmtree(config.output_dir, ignore_errors=True)
    return record


def seed_mean_auc(labels, probs_by_seed, rounds: int) -> dict:
    """The seed-mean test macro-AUC and its percentile 95 % CI: every round resamples the test records once and
    scores every seed's probabilities on that resample."""
    import warnings

    import numpy as np

    from erts_tf import bootstrap

    labels = np.asarray(labels) > 0
    probs = [np.asarray(p, np.float64) for p in probs_by_seed]

    def macro(index):  # (rounds,) seed-mean macro-AUC over the classes defined in each round
        per_seed = [np.stack([bootstrap.auroc_by_rank(labels[index, c], p[index, c]) for c in range(labels.shape[1])],
                             axis=1) for p in probs]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.mean([np.nanmean(a, axis=1) for a in per_seed], axis=0)

    values = np.concatenate([macro(i) for i in bootstrap.resample_chunks(len(labels), rounds, 0)])
    low, high = bootstrap.percentile_interval(values, 0.95)
    return {"point": float(macro(np.arange(len(labels))[None])[0]), "low": low, "high": high}


def aggregate(result) -> list[dict]:
    """One row per (label set, model, mode, fraction): seed means, the seed-mean CI, the leaderboard figure."""
    import numpy as np

    groups = {}
    for r in result["runs"]:
        groups.setdefault((r["label_set"], r["model"], r["mode"], r["train_fraction"]), []).append(r)
    rows = []
    for (label_set, model, mode, fraction), runs in groups.items():
        labels = result["test_labels"][label_set]
        full = {r["seed"]: r for r in result["runs"] if (r["label_set"], r["model"], r["train_fraction"], r["mode"])
                == (label_set, model, fraction, "full")}
        board = LEADERBOARD.get(label_set, {}).get(model)
        rows.append({
            "label_set": label_set, "model": model, "mode": mode, "train_fraction": fraction,
            "seeds": sorted(r["seed"] for r in runs), "n_train": runs[0]["n_train"],
            "test_macro_auc": seed_mean_auc(labels, [r["test_probs"] for r in runs], result["settings"]["rounds"]),
            "test_macro_f1_validation_thresholds": float(np.mean([r["test_macro_f1_validation_thresholds"]
                                                                  for r in runs])),
            "total_work_ratio": float(np.mean([r["total_work_ratio"] for r in runs])),
            "auc_minus_full": (float(np.mean([r["test_macro_auc"] - full[r["seed"]]["test_macro_auc"] for r in runs]))
                               if mode != "full" and all(r["seed"] in full for r in runs) else None),
            "leaderboard": {"model": board[0], "macro_auc": board[1], "note": LEADERBOARD_NOTE} if board else None,
        })
    return rows


SUBSET_SIZE_FACTOR = 5.0  # the PTB-XL subset holds every 5th record of the database


def learning_curves(rows) -> list[dict]:
    """Per (label set, backbone, mode) with runs on parts of the training split: the seed-mean test macro-AUC
    against the training records, fitted log-linearly and extrapolated to the whole database
    (``SUBSET_SIZE_FACTOR`` x the subset's split; an estimate, not a result)."""
    groups = {}
    for r in rows:
        groups.setdefault((r["label_set"], r["model"], r["mode"]), []).append(r)
    curves = []
    for (label_set, model, mode), group in groups.items():
        if all(r["train_fraction"] is None for r in group):
            continue
        fit = common.log_linear_fit([(r["n_train"], r["test_macro_auc"]["point"]) for r in group], SUBSET_SIZE_FACTOR)
        if fit is not None:
            curves.append({"label_set": label_set, "model": model, "mode": mode,
                           "seeds": {str(r["train_fraction"] or "all"): r["seeds"] for r in group}, **fit})
    return curves


def table(rows) -> str:
    lines = [common.markdown_table(
        ["label set", "backbone", "mode", "train part", "seeds", "test macro-AUC [95% CI]", "macro-F1 (val. thr.)",
         "total-work ratio", "AUC - full", "leaderboard (full PTB-XL)"],
        [[r["label_set"], r["model"], r["mode"], "all" if r["train_fraction"] is None else f"{r['train_fraction']:g}",
          ",".join(map(str, r["seeds"])),
          common.fmt_ci(r["test_macro_auc"]),
          common.fmt(r["test_macro_f1_validation_thresholds"]), common.fmt(r["total_work_ratio"]),
          common.fmt(r["auc_minus_full"], "+.3f"),
          f"{r['leaderboard']['model']} {r['leaderboard']['macro_auc']:.3f}" if r["leaderboard"] else "–"]
         for r in rows])]
    lines += ["", f"Leaderboard: {LEADERBOARD_NOTE}."]
    for c in learning_curves(rows):
        points = ", ".join(f"{p['value']:.3f} at {p['n_train']}" for p in c["points"])
        lines.append(f"Learning curve, {c['label_set']} {c['model']} {c['mode']} (test macro-AUC at training records): "
                     f"{points}; {c['slope_per_ln_records'] * math.log(2):+.3f} per doubling; extrapolated to "
                     f"{c['extrapolated_n_train']} records ({c['size_factor']:g}x, the whole database): "
                     f"{c['extrapolated_value']:.3f} (a log-linear fit: an estimate, not a result)")
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse(argv)
    common.quiet_tensorflow()
    import dataclasses

    from erts_tf.data import pipeline
    from erts_tf.training import run

    started = time.perf_counter()
    machine_before = common.machine()
    runs_dir = common.runs_dir(args, NAME)
    modes = [False, True] if args.selection else [False]
    records, files, data_of, test_labels = [], [], {}, {}
    for label_set in args.label_sets:
        for model in args.models:
            for seed in args.seeds:
                for selection in modes:
                    for fraction in [None, *args.train_fractions]:
                        name = (f"{label_set}_{model}_{'selection' if selection else 'full'}"
                                f"{'' if fraction is None else f'_f{fraction:g}'}_s{seed}")
                        config = run_config(args, label_set, model, selection, seed,
                                            os.path.join(args.work_dir, NAME, name))
                        if label_set not in data_of:
                            data_of[label_set] = run.load_data(config)
                            test_labels[label_set] = data_of[label_set].test.label.astype(int).tolist()
                        path = runs_dir / f"{name}.json"
                        files.append(path.name)
                        if path.exists():
                            records.append(json.loads(path.read_text()))
                            print(f"{name}: reused {path}", flush=True)
                            continue
                        data = data_of[label_set]
                        if fraction is not None:  # validation and test stay whole
                            part = train_part(data.train.label, fraction, seed)
                            data = dataclasses.replace(data, train=pipeline.take_samples(data.train, part))
                        record = {"name": name, "label_set": label_set, "model": model, "mode": config.mode,
                                  "seed": seed, "train_fraction": fraction,
                                  **measure(config, data, args.rounds, args.keep_runs)}
                        common.write_json(path, record)
                        records.append(record)
                        ci = record["test_macro_auc_ci"]
                        print(f"{name}: test macro-AUC {record['test_macro_auc']:.3f} [{ci['low']:.3f}, "
                              f"{ci['high']:.3f}], total-work ratio {record['total_work_ratio']:.3f}, "
                              f"cpu {record['cpu_s']:.0f}s", flush=True)
    result = {
        "benchmark": NAME, "settings": vars(args), "machine": machine_before, "leaderboard": LEADERBOARD,
        "leaderboard_note": LEADERBOARD_NOTE, "test_labels": test_labels, "total_wall_s": time.perf_counter() - started,
        "runs": records,
    }
    result["aggregate"] = aggregate(result)
    result["learning_curves"] = learning_curves(result["aggregate"])
    written = common.naming_records(result, common.output_path(args, NAME), runs_dir, files, RUN_HEADLINES)
    return common.publish(args, NAME, result, table(result["aggregate"]), written=written)


if __name__ == "__main__":
    main()
