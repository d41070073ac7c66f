"""One setting chosen by cross-validation over the training records (patient-wise), never on the test split.

Each value of one flag (``--flag``, ``--values`` separated by ``;``) trains the
recommended flagfile once per fold and seed. A fold (``--cv_folds``,
``--cv_fold``; ``erts_tf/data/folds.py``) pools the dataset's train and
validation splits, deals the records (``--cv_group_feature``: on MIT-BIH one
patient each) to ``--folds`` folds, holds one fold out and trains on the others;
its model predicts the records it held out. Pooled over the folds, those
predictions cover every training record once: the value's out-of-fold metrics,
test macro-F1 over the classes present and the dataset's field metric
(``baselines.FIELD_METRIC``: MIT-BIH's S and V Se/PPV/F1), the seed mean with
95 % percentile bootstrap CIs over the pooled samples; macro-F1 also with the
groups (patients) resampled instead (``bootstrap.group_prf_by_round``), the
honest spread when a few patients hold most of a class's beats.

The chosen value is the one with the highest out-of-fold ``--criterion``
(default macro-F1), stated before the runs. Beside it: each other value's paired
difference to it in that metric (same resamples; in macro-F1 with patients resampled too), each
fold's macro-F1, and the test split's
metrics of the same fold models (their mean), which play no part in the choice.

Each run's record is written to ``cross_validation_<dataset>_runs/<value>_f<fold>_s<seed>.json``
as soon as it finishes, and a rerun reuses the records there: folds can run as
separate processes (``--fold_indices``) and be aggregated once all are written
(``--aggregate_only``: nothing is trained; a value or seed missing a fold is left out).

Usage:
  python benchmarks/cross_validation.py --dataset mitbih_arrhythmia --flag class_weights \\
      --values "N:1,S:10,V:3.8,F:10;N:1,S:20,V:3.8,F:10;N:1,S:40,V:3.8,F:10" --folds 3 --seeds 0
  python benchmarks/cross_validation.py --smoke      # synthetic_ecg/tiny by corruption type, 2 epochs

Writes benchmarks/results/cross_validation_<dataset>.json: the aggregate and each run's headline figures; the
records themselves (predictions and all) stay in the runs folder it names.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common  # noqa: E402

NAME = "cross_validation"
RUN_HEADLINES = ("value", "fold", "seed", "held_out_groups", "validation_macro_f1", "test_macro_f1", "cpu_s")
SMOKE = {"flag": "lr", "values": "0.001;0.003", "group_feature": "corruption"}


def parse(argv=None):
    parser = common.base_parser(__doc__, NAME)
    parser.add_argument("--dataset", default=None, help="a dataset with a recommended_full.cfg (synthetic_ecg with --smoke)")
    parser.add_argument("--flagfile", default=None, help="default configs/<dataset>/recommended_full.cfg")
    parser.add_argument("--flag", default=None, help="the flag whose value is chosen, e.g. class_weights")
    parser.add_argument("--values", default=None, help="its candidate values, separated by ';'")
    parser.add_argument("--criterion", default="macro_f1",
                        help="the out-of-fold metric that chooses (macro_f1, or a field metric such as S_f1)")
    parser.add_argument("--folds", type=int, default=3, help="number of folds (--cv_folds)")
    parser.add_argument("--fold_indices", default=None, help="comma-separated folds to run (default: all)")
    parser.add_argument("--group_feature", default="record", help="--cv_group_feature (one patient per value)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--epochs", type=int, default=None, help="default: the flagfile's (2 with --smoke)")
    parser.add_argument("--model", default=None, help="backbone (default: the flagfile's)")
    parser.add_argument("--rounds", type=int, default=None, help="bootstrap rounds (default 1000; 200 with --smoke)")
    parser.add_argument("--keep_runs", action="store_true", help="keep the run directories under --work_dir")
    parser.add_argument("--runs_dir", default=None, help="folder of the per-run records (default <output stem>_runs)")
    parser.add_argument("--aggregate_only", action="store_true",
                        help="train nothing: aggregate the records already in the runs folder")
    args = parser.parse_args(argv)
    if args.smoke:
        args.dataset = args.dataset or "synthetic_ecg"
        args.flag, args.values = args.flag or SMOKE["flag"], args.values or SMOKE["values"]
        args.group_feature = SMOKE["group_feature"]
        args.folds = 2
    if not (args.dataset and args.flag and args.values):
        parser.error("--dataset, --flag and --values are required (or --smoke)")
    args.flagfile = args.flagfile or ("configs/quickstart.cfg" if args.dataset == "synthetic_ecg"
                                      else f"configs/{args.dataset}/recommended_full.cfg")
    if not (common.REPO_ROOT / args.flagfile).exists():
        parser.error(f"{args.flagfile} does not exist")
    import baselines

    criteria = ("macro_f1", *baselines.FIELD_METRIC_NAMES.get(baselines.FIELD_METRIC.get(args.dataset), ()))
    if args.criterion not in criteria:
        parser.error(f"--criterion={args.criterion}: choose one of {', '.join(criteria)} for {args.dataset}")
    args.values = [v.strip() for v in args.values.split(";") if v.strip()]
    if len(args.values) < 2:
        parser.error("--values needs at least two candidates")
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    args.fold_indices = ([int(f) for f in args.fold_indices.split(",") if f] if args.fold_indices
                         else list(range(args.folds)))
    if any(not 0 <= f < args.folds for f in args.fold_indices):
        parser.error(f"--fold_indices must lie in 0..{args.folds - 1}")
    args.epochs = args.epochs or (2 if args.smoke else None)
    args.rounds = args.rounds or (200 if args.smoke else 1000)
    if args.output is None:
        args.output = str(common.RESULTS_DIR / f"{NAME}_{args.dataset}{'_smoke' if args.smoke else ''}.json")
    return args


def value_label(value: str) -> str:
    """A file-name form of a flag value (``N:1,S:20`` -> ``N_1_S_20``)."""
    return re.sub(r"[^A-Za-z0-9.]+", "_", value).strip("_")


def run_name(value: str, fold: int, seed: int) -> str:
    """The name of one run's record (``<value_label>_f<fold>_s<seed>``), its file ``<name>.json`` in the runs folder."""
    return f"{value_label(value)}_f{fold}_s{seed}"


def fold_config(args, value: str, fold: int, seed: int, output_dir: str):
    """The ``RunConfig`` of the flagfile with ``--<flag>=value`` on fold ``fold``, as erts-tf's flags parse it."""
    argv = [f"--flagfile={args.flagfile}", f"--{args.flag}={value}", f"--cv_folds={args.folds}", f"--cv_fold={fold}",
            f"--cv_group_feature={args.group_feature}", f"--output_dir={output_dir}", f"--seed={seed}",
            "--overwrite", "--verbose=0", "--noreport"]
    if args.smoke:
        argv += ["--dataset_config=tiny", "--mode=full"]
    for name in ("model", "epochs", "data_dir"):
        if getattr(args, name):
            argv.append(f"--{name}={getattr(args, name)}")
    if args.manual_dir and args.dataset != "synthetic_ecg":
        argv.append(f"--manual_dir={args.manual_dir}")
    os.makedirs(os.path.dirname(output_dir), exist_ok=True)
    return common.flagfile_config(argv)


# -- aggregation -------------------------------------------------------------------------------
def out_of_fold(records, folds: int) -> tuple[list, list[list], list[list] | None, list[int]]:
    """``(labels, preds_by_seed, probs_by_seed, seeds)``: per seed with every fold's record, the held-out labels,
    predictions and (where recorded) probabilities of folds ``0..folds-1`` end to end (the same labels for every
    seed). Seeds missing a fold are left out."""
    by_seed = {}
    for r in records:
        by_seed.setdefault(r["seed"], {})[r["fold"]] = r
    seeds = sorted(s for s, fold_records in by_seed.items() if len(fold_records) == folds)

    def pooled(seed, key):
        return [x for f in range(folds) for x in by_seed[seed][f][key]]

    labels = pooled(seeds[0], "held_out_labels") if seeds else []
    with_probs = bool(seeds) and all("validation_probs" in r for s in seeds for r in by_seed[s].values())
    return (labels, [pooled(s, "validation_pred") for s in seeds],
            [pooled(s, "validation_probs") for s in seeds] if with_probs else None, seeds)


def aggregate(result) -> dict:
    import baselines
    import numpy as np

    from erts_tf import bootstrap, metrics

    settings = result["settings"]
    folds, rounds, criterion = settings["folds"], settings["rounds"], settings["criterion"]
    class_names, test_labels = result["class_names"], result["test_labels"]
    kind = baselines.FIELD_METRIC.get(settings["dataset"], "macro_f1")
    rows, by_round = {}, {}
    for value in settings["values"]:
        records = [r for r in result["runs"] if r["value"] == value]
        labels, preds, probs, seeds = out_of_fold(records, folds)
        if not seeds:
            continue
        point, by_round[value] = baselines.field_round_values(kind, labels, preds, class_names, rounds, probs)
        fold_models = [r for r in records if r["seed"] in seeds]
        rows[value] = {
            "seeds": seeds,
            "out_of_fold": {k: _interval(v, by_round[value][k]) for k, v in point.items()},
            "fold_macro_f1": {str(f): float(np.mean([metrics.macro_f1(np.asarray(r["held_out_labels"]),
                                                                     np.asarray(r["validation_pred"]), len(class_names))
                                                     for r in fold_models if r["fold"] == f]))
                              for f in range(folds)},
            "test_of_fold_models": baselines.field_rounds(
                kind, test_labels, [r["test_pred"] for r in fold_models], class_names, rounds,
                [r["test_probs"] for r in fold_models] if all("test_probs" in r for r in fold_models) else None),
        }
    by_patient = {}
    if result.get("held_out_sample_groups"):  # macro-F1 again, the groups (patients) resampled instead of samples
        groups = [g for f in range(folds) for g in result["held_out_sample_groups"][str(f)]]
        counts = bootstrap.group_resample_counts(len(set(groups)), rounds, 0)
        for value, row in rows.items():
            labels, preds, _, _ = out_of_fold([r for r in result["runs"] if r["value"] == value], folds)
            by_patient[value] = group_macro_f1_rounds(labels, preds, groups, len(class_names), counts)
            row["out_of_fold_macro_f1_by_patient"] = _interval(row["out_of_fold"]["macro_f1"]["point"],
                                                               by_patient[value])
    if len(rows) < 2:
        return {"rows": rows, "chosen": None, "criterion": criterion}
    chosen = max(rows, key=lambda v: rows[v]["out_of_fold"][criterion]["point"])
    for value, row in rows.items():  # paired: the same resamples of the same pooled records
        if value != chosen:
            row["minus_chosen"] = _interval(row["out_of_fold"][criterion]["point"]
                                            - rows[chosen]["out_of_fold"][criterion]["point"],
                                            by_round[value][criterion] - by_round[chosen][criterion])
            if by_patient:
                row["macro_f1_minus_chosen_by_patient"] = _interval(
                    row["out_of_fold"]["macro_f1"]["point"] - rows[chosen]["out_of_fold"]["macro_f1"]["point"],
                    by_patient[value] - by_patient[chosen])
    return {"rows": rows, "chosen": chosen, "criterion": criterion}


def _interval(point: float, by_round) -> dict:
    from erts_tf import bootstrap

    low, high = bootstrap.percentile_interval(by_round)
    return {"point": point, "low": low, "high": high}


def group_macro_f1_rounds(labels, preds_by_seed, groups, n_classes: int, counts):
    """``(rounds,)`` seed-mean macro-F1 (over the classes present in ``labels``) of each cluster-bootstrap round
    ``counts`` ``(rounds, n_groups)`` (``bootstrap.group_prf_by_round``)."""
    import numpy as np

    from erts_tf import bootstrap, metrics

    labels = np.asarray(labels)
    present = metrics.present_classes(labels, n_classes)
    return np.mean([bootstrap.group_prf_by_round(labels, pred, groups, n_classes, counts)["f1"][:, present].mean(axis=1)
                    for pred in preds_by_seed], axis=0)


def tables(result) -> str:
    import baselines

    agg = result["aggregate"]
    flag = result["settings"]["flag"]
    field_keys = [k for names in baselines.FIELD_METRIC_NAMES.values() for k in names
                  if any(k in row["out_of_fold"] for row in agg["rows"].values())]
    headers = [f"--{flag}", "out-of-fold macro-F1", f"{agg['criterion']} minus chosen",
               "macro-F1 minus chosen, patients resampled", *[f"oof {k}" for k in field_keys],
               "per fold macro-F1", "test macro-F1 (not used)"]
    lines = []
    for value, row in agg["rows"].items():
        oof, test = row["out_of_fold"], row["test_of_fold_models"]
        lines.append([value + (" (chosen)" if value == agg["chosen"] else ""), common.fmt_ci(oof["macro_f1"]),
                      common.fmt_ci(row.get("minus_chosen")), common.fmt_ci(row.get("macro_f1_minus_chosen_by_patient")),
                      *[common.fmt(oof[k]["point"], ".2f")
                                                                          for k in field_keys],
                      " / ".join(common.fmt(v, ".3f") for v in row["fold_macro_f1"].values()),
                      common.fmt_ci(test["macro_f1"])])
    return (f"{result['settings']['folds']}-fold cross-validation by {result['settings']['group_feature']} over the "
            f"train and validation splits; chosen by out-of-fold {agg['criterion']}: {agg['chosen']}\n\n"
            + common.markdown_table(headers, lines))


def main(argv=None) -> dict:
    args = parse(argv)
    common.quiet_tensorflow()
    import baselines
    import modes

    from erts_tf.training import run

    started = time.perf_counter()
    machine_before = common.machine()
    runs_dir = common.runs_dir(args, NAME)
    store_probs = baselines.FIELD_METRIC.get(args.dataset) == "auroc"  # the field metric needs probabilities
    records = []
    for seed in args.seeds:
        for fold in args.fold_indices:  # fold-major: one fold's data serve every value
            data = None
            for value in args.values:
                name = run_name(value, fold, seed)
                path = runs_dir / f"{name}.json"
                if path.exists():
                    records.append(json.loads(path.read_text()))
                    print(f"{name}: reused {path}", flush=True)
                    continue
                if args.aggregate_only:
                    print(f"{name}: no record yet", flush=True)
                    continue
                config = fold_config(args, value, fold, seed, os.path.join(args.work_dir, NAME, args.dataset, name))
                if data is None:
                    data = run.load_data(config)
                record = {"value": value, "fold": fold, "held_out_labels": data.validation.label.astype(int).tolist(),
                          "held_out_groups": sorted({g.decode() if isinstance(g, bytes) else str(g) for g in
                                                     data.validation.extras[args.group_feature].tolist()}),
                          **modes.measured_run(config, data, value_label(value), args.rounds, args.keep_runs,
                                               store_probs=store_probs, validation_pred=True)}
                common.write_json(path, record)
                records.append(record)
                print(f"{name}: test macro-F1 {record['test_macro_f1']:.3f}, held-out macro-F1 "
                      f"{record['validation_macro_f1']:.3f}, cpu {record['cpu_s']:.0f}s", flush=True)
    test_facts, sample_groups = _split_facts(args, records)
    result = {"benchmark": NAME, "settings": vars(args), "machine": machine_before, **test_facts,
              "held_out_sample_groups": sample_groups, "total_wall_s": time.perf_counter() - started,
              "runs": records}
    result["aggregate"] = aggregate(result)
    # The records (predictions and all) stay in the runs folder; the result names them and keeps their headlines.
    result.pop("held_out_sample_groups")
    result.pop("test_labels")
    files = [f"{run_name(r['value'], r['fold'], r['seed'])}.json" for r in records]
    written = common.naming_records(result, common.output_path(args, NAME), runs_dir, files, RUN_HEADLINES)
    return common.publish(args, NAME, written, tables(written))


def _split_facts(args, records) -> tuple[dict, dict]:
    """The test split's class names and labels, and each fold's held-out samples' groups (``{fold: [group]}``,
    the held-out split's order), read from the dataset; ``ValueError`` if a record's held-out labels differ."""
    from erts_tf import run_data

    facts, groups = {}, {}
    for fold in range(args.folds):
        config = fold_config(args, args.values[0], fold, args.seeds[0], os.path.join(args.work_dir, NAME, "unused"))
        _, held_out, test = run_data.load_splits(run_data.prepare_builder(config), config)
        for r in records:
            if r["fold"] == fold and r["held_out_labels"] != held_out.label.astype(int).tolist():
                raise ValueError(f"the record of {r['value']} fold {fold} seed {r['seed']} held out other samples")
        groups[str(fold)] = [g.decode() if isinstance(g, bytes) else str(g)
                             for g in held_out.extras[args.group_feature].tolist()]
        facts = {"class_names": list(test.class_names), "test_labels": test.label.astype(int).tolist()}
    return facts, groups


if __name__ == "__main__":
    main()
