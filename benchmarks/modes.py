"""Selection modes side by side: quality, effective epochs, total work, wall-clock, CPU time, memory.

Same dataset, backbone, seeds and epochs for every mode; epoch level for
``--modes`` and batch level for ``--batch_modes``. All runs happen in this one
process, one after the other (the order is rotated per seed so that a drift in
the machine's load does not always hit the same mode), and every ratio is
taken against mode ``full`` of the same seed, measured in the same process.

Mode ``full`` never selects, so it is the same computation at either level:
the batch-level table reuses the epoch-level ``full`` runs unless
``--rerun_full_batch`` is given.

Columns:
  test macro-F1: mean over seeds; the 95 % CI is a percentile bootstrap over
    the test records of the seed-mean macro-F1 (each round resamples the test
    set once and scores every seed's predictions on it; erts_tf.bootstrap);
  effective epochs: back-propagated samples / training-set size (the paper's);
  work: total-work ratio (forward + Grad-CAM + backward sample-passes relative
    to full training's 2 per sample per epoch of full's epochs; from the run's
    cost ledger, so full_matched's is its share of full's work);
  train wall: the ledger's training time (selection, re-scoring and training,
    no validation) relative to full's; "ep>=1" leaves out epoch 0 (full data in
    every mode, and it holds the first tracing of the train step); run wall: the whole run (model build,
    tracing, every epoch with validation, best-weight restore, test);
  CPU: process CPU seconds of the run relative to full's (less sensitive than
    wall-clock to other processes on a shared machine);
  peak RSS: resident memory sampled every 50 ms during the run, as its
    increase over the RSS at the run's start (mean over seeds; all runs share
    one process, so the absolute peak mostly reflects the runs before it: it
    is in the JSON, with the RSS at the start of each run);
  best epoch: the epochs whose weights were restored for the test (by
    validation macro-F1), one per seed: a warm-up epoch means the selection
    epochs never beat the model selection started from.

Variants (``--variants``, instead of ``--modes``/``--batch_modes``): named
runs at epoch level with their own settings (``VARIANTS``), among them
``full_matched``: mode full for as many epochs as ``--matched_to``'s total work
buys (same seed), its learning-rate schedule compressed to those epochs. Each
run's record is written to ``<output stem>_runs/`` as soon as it finishes, and
a rerun skips the records already there, so a stopped benchmark loses one run.
``--recipe recommended`` trains every variant with the recommended recipe
(cosine learning rate with warm-up, augmentation, capped class weights);
``reference`` with the reference's.

Usage:
  python benchmarks/modes.py                       # the full grid (synthetic_ecg/quickstart, resnet1d, 3 seeds)
  python benchmarks/modes.py --smoke               # tiny, 1 seed, 3 epochs
  python benchmarks/modes.py --dataset ptbxl --dataset_config 100hz --seeds 0 --epochs 8

Writes benchmarks/results/modes.json (modes_<dataset>.json for another
dataset) and a PNG beside it (macro-F1 against the wall-clock ratio; kept
fraction per epoch).
"""

from __future__ import annotations

import gc
import os
import pathlib
import shutil
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common  # noqa: E402

NAME = "modes"
EPOCH_MODES = ("full", "dbpd", "srd", "smrd", "erts", "erts_smrd")
BATCH_MODES = ("dbpd", "erts")
COMPARE_WITH = ("full", "dbpd", "smrd", "srd", "erts_smrd")
# What the result JSON keeps of each run beside its record's file name (the runs folder holds the record).
RUN_HEADLINES = ("mode", "policy_mode", "level", "seed", "test_macro_f1", "validation_macro_f1", "best_epoch",
                 "effective_epochs", "total_work_ratio", "cpu_s")
# Named epoch-level runs: the selection mode and the settings that differ from the recipe's.
_INFOBATCH = {"warm_up_epochs": 1, "anneal_frac": 0.125, "rescore_every": 0}
VARIANTS = {
    "full": {"mode": "full"},
    "full_matched": {"mode": "full"},  # epochs set from --matched_to's total work, per seed
    "smrd": {"mode": "smrd"},
    "erts": {"mode": "erts"},
    "erts_reference": {"mode": "erts", "min_keep_frac": 0.0},
    "infobatch": {"mode": "infobatch", "prune_ratio": 0.5, **_INFOBATCH},
    "infobatch_r07": {"mode": "infobatch", "prune_ratio": 0.7, **_INFOBATCH},
    "infobatch_r09": {"mode": "infobatch", "prune_ratio": 0.9, **_INFOBATCH},
    "erts_infobatch": {"mode": "erts_infobatch", "prune_ratio": 0.7, "cam_start_epoch": 1, "focus_every": 3,
                       **_INFOBATCH},
    "erts_infobatch_r05": {"mode": "erts_infobatch", "prune_ratio": 0.5, "cam_start_epoch": 1, "focus_every": 3,
                           **_INFOBATCH},
    "erts_infobatch_r09": {"mode": "erts_infobatch", "prune_ratio": 0.9, "cam_start_epoch": 1, "focus_every": 3,
                           **_INFOBATCH},
    # r 0.9 with focus refreshed half as often: Grad-CAM passes were 0.046 of full's work at focus_every 3
    "erts_infobatch_r09_f6": {"mode": "erts_infobatch", "prune_ratio": 0.9, "cam_start_epoch": 1, "focus_every": 6,
                              **_INFOBATCH},
    # the two above with 2 annealing epochs of 24 rather than 3 (ceil(0.08 x 24) = 2): r 0.9 alone ended at 0.45-0.46
    "infobatch_r09_a2": {"mode": "infobatch", "prune_ratio": 0.9, **_INFOBATCH, "anneal_frac": 0.08},
    "erts_infobatch_r09_f6_a2": {"mode": "erts_infobatch", "prune_ratio": 0.9, "cam_start_epoch": 1, "focus_every": 6,
                                 **_INFOBATCH, "anneal_frac": 0.08},
}
RECIPES = {
    "reference": {},
    "recommended": {"lr": 1e-3, "lr_schedule": "cosine", "lr_warmup_epochs": 2, "augment": "shift,scale,wander,noise",
                    "cb_max_ratio": 10.0},
}


def parse(argv=None):
    parser = common.base_parser(__doc__, NAME)
    parser.add_argument("--flagfile", default=None,
                        help="train every run from this shipped flagfile (e.g. configs/ptbxl/recommended_full.cfg: "
                             "its dataset, input windows, recipe, backbone, batch and epochs) instead of --recipe; "
                             "each run then sets its mode and the selection settings below over it")
    parser.add_argument("--dataset", default=None, help="default: synthetic_ecg, or --flagfile's")
    parser.add_argument("--dataset_config", default=None, help="default: quickstart (tiny with --smoke), or --flagfile's")
    parser.add_argument("--model", default=None, help="default: resnet1d, or --flagfile's")
    parser.add_argument("--modes", default=",".join(EPOCH_MODES), help="epoch-level modes")
    parser.add_argument("--batch_modes", default=",".join(BATCH_MODES),
                        help="batch-level modes ('full' reuses the epoch-level full run unless --rerun_full_batch)")
    parser.add_argument("--rerun_full_batch", action="store_true", help="run mode full again at batch level")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2; 0 with --smoke)")
    parser.add_argument("--epochs", type=int, default=None, help="default 12 (3 with --smoke)")
    parser.add_argument("--warm_up_epochs", type=int, default=None, help="default 3 (1 with --smoke)")
    parser.add_argument("--cam_start_epoch", type=int, default=1)
    parser.add_argument("--start_revision", type=int, default=-1, help="-1: no revision phase")
    parser.add_argument("--rescore_every", type=int, default=2)
    parser.add_argument("--tau", type=float, default=0.3)
    parser.add_argument("--cam_keep_frac", type=float, default=0.7)
    parser.add_argument("--focus_score", default="entropy")
    parser.add_argument("--batch_size", type=int, default=None, help="default: 32, or --flagfile's")
    parser.add_argument("--rounds", type=int, default=None, help="bootstrap rounds (default 1000; 200 with --smoke)")
    parser.add_argument("--keep_runs", action="store_true", help="keep the run directories under --work_dir")
    parser.add_argument("--variants", default=None, help=f"named epoch-level runs, from {', '.join(VARIANTS)}")
    parser.add_argument("--matched_to", default="erts_infobatch", help="variant whose total work full_matched matches")
    parser.add_argument("--focus_mode", default=None,
                        help="the mode under test in comparisons and targets (default erts; erts_infobatch with --variants)")
    parser.add_argument("--peer", default="infobatch",
                        help="the variant the mode under test must not fall below at the same or lower cost")
    parser.add_argument("--recipe", default="reference", choices=sorted(RECIPES))
    parser.add_argument("--runs_dir", default=None,
                        help="folder of the per-run records (default: <output stem>_runs beside the output)")
    parser.add_argument("--label_noise", type=float, default=0.0,
                        help="flip this share of the training labels to another class (single-label; validation and "
                             "test unchanged), drawn once from --label_noise_seed, the same for every run: how well "
                             "each mode trains on noisy labels, and whether focus finds the flipped samples")
    parser.add_argument("--label_noise_seed", type=int, default=0)
    parser.add_argument("--reaggregate", default=None,
                        help="recompute the tables, targets and plot of an existing modes JSON (no training)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    if smoke:
        args.dataset_config = args.dataset_config or "tiny"
        args.epochs = args.epochs or 3
    if args.flagfile:
        if not (common.REPO_ROOT / args.flagfile).exists():
            parser.error(f"--flagfile={args.flagfile} does not exist")
        shipped = common.flagfile_config([f"--flagfile={args.flagfile}", "--output_dir=unused"])
        for name in ("dataset", "dataset_config", "model", "epochs", "batch_size"):
            if getattr(args, name) is None:
                setattr(args, name, getattr(shipped, name))
    args.dataset = args.dataset or "synthetic_ecg"
    args.model = args.model or "resnet1d"
    args.batch_size = args.batch_size or 32
    args.dataset_config = args.dataset_config or ("quickstart" if args.dataset == "synthetic_ecg" else None)
    args.seeds = [int(s) for s in (args.seeds or ("0" if smoke else "0,1,2")).split(",")]
    args.epochs = args.epochs or 12
    args.warm_up_epochs = args.warm_up_epochs if args.warm_up_epochs is not None else (1 if smoke else 3)
    args.rounds = args.rounds or (200 if smoke else 1000)
    args.modes = [m for m in args.modes.split(",") if m]
    args.batch_modes = [m for m in args.batch_modes.split(",") if m]
    if "full" not in args.modes:
        args.modes = ["full", *args.modes]  # every ratio is relative to it
    if args.variants:
        names = [v for v in args.variants.split(",") if v]
        unknown = [v for v in names if v not in VARIANTS]
        if unknown:
            parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
        if "full_matched" in names and args.matched_to not in names:
            parser.error(f"full_matched needs --matched_to={args.matched_to} among the variants")
        args.variants = ["full", *[v for v in names if v != "full"]]
        args.modes, args.batch_modes = [], []
    args.focus_mode = args.focus_mode or ("erts_infobatch" if args.variants else "erts")
    if args.output is None and args.dataset != "synthetic_ecg":
        args.output = str(common.RESULTS_DIR / f"{NAME}_{args.dataset}{'_smoke' if smoke else ''}.json")
    return args


def _combos(args) -> list[tuple[str, str]]:
    if args.variants:
        return [("epoch", v) for v in args.variants]
    combos = [("epoch", m) for m in args.modes]
    for m in args.batch_modes:
        if m != "full" or args.rerun_full_batch:
            combos.append(("batch", m))
    return combos


def _config(args, mode, level, seed, output_dir, overrides=None):
    """The ``RunConfig`` of one run: the dataset and recipe (``--flagfile``'s, or ``--recipe``'s over
    the defaults), then this benchmark's selection settings, then the variant's ``overrides``."""
    import dataclasses

    from erts_tf.training.config import RunConfig

    run = dict(
        output_dir=output_dir, dataset=args.dataset, dataset_config=args.dataset_config, data_dir=args.data_dir,
        manual_dir=args.manual_dir if args.dataset != "synthetic_ecg" else None, model=args.model,
        epochs=args.epochs, batch_size=args.batch_size, seed=seed, overwrite=True, verbose=0, report=False,
    )
    selection = dict(
        mode=mode, level=level, tau=args.tau, cam_keep_frac=args.cam_keep_frac, focus_score=args.focus_score,
        warm_up_epochs=args.warm_up_epochs, cam_start_epoch=args.cam_start_epoch, start_revision=args.start_revision,
        rescore_every=args.rescore_every,
    )
    if args.flagfile:
        shipped = common.flagfile_config([f"--flagfile={args.flagfile}", "--output_dir=unused"])
        return dataclasses.replace(shipped, **{**run, **selection, **(overrides or {})})
    return RunConfig(**{**run, **selection, **RECIPES[args.recipe], **(overrides or {})})


def _warmup_epochs(args) -> int:
    """Learning-rate warm-up epochs of the recipe every run trains with."""
    if args.flagfile:
        return common.flagfile_config([f"--flagfile={args.flagfile}", "--output_dir=unused"]).lr_warmup_epochs
    return RECIPES[args.recipe].get("lr_warmup_epochs", 0)


def _variant_overrides(args, name, seed, records) -> dict:
    """The settings of variant ``name`` for ``seed``; full_matched takes its epochs from the
    ``--matched_to`` run of the same seed (which must be in ``records``)."""
    overrides = {k: v for k, v in VARIANTS[name].items() if k != "mode"}
    if name == "full_matched":
        (target,) = [r for r in records if r["mode"] == args.matched_to and r["seed"] == seed]
        epochs = max(1, round(args.epochs * target["total_work_ratio"]))
        warmup = _warmup_epochs(args)
        overrides.update(epochs=epochs, lr_warmup_epochs=round(warmup * epochs / args.epochs))
    return overrides


def _split_probs(run_dir, splits):
    """Class probabilities of each of ``splits`` by the run's saved model (its kept weights, as the run scored them)."""
    from erts_tf import inference, run_folder

    model = run_folder.load_model(run_dir)
    return [inference.split_probs(model, split, 256) for split in splits]


def run_one(args, data, mode, level, seed, overrides=None, name=None) -> dict:
    name = name or mode
    run_dir = os.path.join(args.work_dir, NAME, f"{args.dataset}_{args.dataset_config}", f"{level}_{name}_s{seed}")
    config = _config(args, mode, level, seed, run_dir, overrides)
    if not args.label_noise:
        return measured_run(config, data, name, args.rounds, args.keep_runs)
    epochs = []
    callback = noisy_label_callback(data.train.extras[FLIPPED].astype(bool), epochs)
    record = measured_run(config, data, name, args.rounds, args.keep_runs, extra_callbacks=[callback])
    record["label_noise_epochs"] = epochs
    return record


# -- label noise -------------------------------------------------------------------------------
FLIPPED = "label_flipped"  # the training split's extra (and audit.csv column) under --label_noise


def with_label_noise(data, fraction: float, seed: int):
    """``data`` with ``round(fraction * n)`` training labels, drawn from ``seed``, each moved to another class
    (uniformly among the others); validation and test unchanged. The training split gains the extra
    ``label_flipped`` ``(n,)`` int64 (1: flipped), which audit.csv writes beside every row."""
    import dataclasses

    import numpy as np

    train = data.train
    if train.label.ndim != 1:
        raise SystemExit("--label_noise: single-label datasets only")
    if not 0.0 < fraction < 1.0:
        raise SystemExit(f"--label_noise={fraction}: give a share in (0, 1)")
    rng = np.random.default_rng(seed)
    n, n_classes = len(train.label), len(train.class_names)
    flipped = np.zeros(n, bool)
    flipped[rng.choice(n, round(fraction * n), replace=False)] = True
    shift = rng.integers(1, n_classes, n)  # never 0: a flipped label always changes
    label = np.where(flipped, (train.label + shift) % n_classes, train.label).astype(train.label.dtype)
    noisy = dataclasses.replace(train, label=label, extras={**train.extras, FLIPPED: flipped.astype(np.int64)})
    return dataclasses.replace(data, train=noisy)


def noisy_label_facts(flipped, p_true, focus, focus_epoch, reason) -> dict:
    """What the selection state says of the flipped samples ``flipped`` ``(n,)`` bool after an epoch.

    ``p_true``, ``focus``, ``focus_epoch``, ``reason`` ``(n,)``: the state's arrays. Returns the AUROC
    (flipped as positives) of the loss ``-log p_true`` over the scored samples, and of ``-focus`` over the
    samples with a computed focus and over the hard ones among them (loss >= the mean, where
    erts_infobatch's filter ranks by focus); the flipped share among all samples, the hard ones, the
    kept ones and the ``low_focus`` drops (None where a group is empty or has one kind only)."""
    import numpy as np

    from erts_tf import bootstrap
    from erts_tf.selection.policies import Reason

    def auroc(mask, score):
        pos = flipped[mask]
        if pos.all() or not pos.any():
            return None
        return float(bootstrap.auroc_by_rank(pos[None], np.asarray(score, np.float64)[mask][None])[0])

    def share(mask):
        return float(flipped[mask].mean()) if mask.any() else None

    scored = p_true >= 0
    loss = -np.log(np.clip(p_true, 1e-7, 1.0))
    hard = scored & (loss >= loss[scored].mean()) if scored.any() else scored
    has_focus = focus_epoch >= 0
    kept = np.isin(reason, [int(r) for r in Reason if r.kept])
    return {
        "loss_auroc": auroc(scored, loss),
        "focus_auroc": auroc(has_focus, -focus),
        "focus_auroc_hard": auroc(has_focus & hard, -focus),
        "flipped_share": share(np.ones_like(flipped)),
        "flipped_share_hard": share(hard),
        "flipped_share_kept": share(kept),
        "flipped_share_low_focus": share(reason == int(Reason.LOW_FOCUS)),
        "low_focus": int((reason == int(Reason.LOW_FOCUS)).sum()),
    }


def noisy_label_callback(flipped, epochs: list):
    """A Keras callback that appends ``{"epoch", **noisy_label_facts(...)}`` to ``epochs`` after every epoch
    (the keep-mask and reasons are those the epoch trained with)."""
    import keras

    class NoisyLabelFacts(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            state = self.model.state  # the run's ERTSModel
            epochs.append({"epoch": int(epoch), **noisy_label_facts(
                flipped, state.p_true.numpy(), state.focus.numpy(), state.focus_epoch.numpy(),
                state.reason.numpy())})

    return NoisyLabelFacts()


def measured_run(config, data, name, rounds, keep_runs=False, store_probs=False, extra_callbacks=None,
                 validation_pred=False) -> dict:
    """Trains ``config`` on ``data`` under a ``common.Meter`` and returns its benchmark record:
    test macro-F1 with its bootstrap CI (``rounds``), cost, time, memory, the epoch history and
    the test predictions (and ``(n_test, n_classes)`` probabilities, rounded to 5 decimals, with
    ``store_probs``); for a single-label run also the test predictions at the operating point chosen on
    validation (``validation_offsets``, ``test_pred_validation_offsets``); with ``validation_pred`` the
    validation predictions too (a cross-validation fold's held-out records; their probabilities with
    ``store_probs``). Without ``keep_runs`` only the
    run's summary, audit and config stay.
    ``extra_callbacks`` go to ``run.run``."""
    import keras
    import numpy as np

    from erts_tf import bootstrap, metrics, run_folder
    from erts_tf.training import run

    run_dir = config.output_dir
    keras.backend.clear_session()
    gc.collect()
    with common.Meter() as meter:
        summary = run.run(config, data, extra_callbacks=extra_callbacks)
    probs, *validation_probs = _split_probs(run_dir, [data.test, *([data.validation] if validation_pred else [])])
    check = metrics.classification_metrics(data.test.label, probs, data.test.class_names)["macro_f1"]
    if abs(check - summary["test"]["macro_f1"]) > 1e-6:
        print(f"warning: recomputed test macro-F1 {check:.4f} != run's {summary['test']['macro_f1']:.4f}", flush=True)
    ci = bootstrap.single_label_bootstrap(data.test.label, probs, data.test.class_names, rounds=rounds, seed=0)
    cost = summary["cost"]
    record = {
        "mode": name, "policy_mode": config.mode, "level": config.level, "seed": config.seed, "run_dir": run_dir,
        "settings": config.to_json(),
        "test_macro_f1": summary["test"]["macro_f1"], "test_macro_f1_ci": ci["macro_f1"],
        "test_accuracy": summary["test"]["accuracy"],
        "test_per_class_f1": {k: v["f1"] for k, v in summary["test"]["per_class"].items()},
        "validation_macro_f1": summary["validation"]["macro_f1"], "best_epoch": summary["best_epoch"],
        "weights_epoch": summary["weights_epoch"],
        "effective_epochs": cost["effective_epochs"], "total_work_ratio": cost["total_work_ratio"],
        "cost": cost, "run_wall_s": meter.result["wall_s"], "train_s": cost["train_s"],
        "cpu_s": meter.result["cpu_s"], "rss_peak_bytes": meter.result["rss_peak_bytes"],
        "rss_start_bytes": meter.result["rss_start_bytes"], "meter": meter.result,
        "epochs": [{k: e.get(k) for k in ("epoch", "phase", "kept", "kept_fraction", "samples_read", "forward_train",
                                            "forward_score", "gradcam", "backward", "optimizer_steps", "train_s",
                                            "wall_s", "loss", "macro_f1", "val_loss", "val_macro_f1")}
                   for e in summary["epochs"]],
        "test_pred": np.argmax(probs, axis=-1).astype(int).tolist(),
    }
    tuned = summary["test"].get("tuned")
    if tuned is not None:  # the operating point chosen on validation (run.py; metrics.macro_f1_optimal_offsets)
        offsets = np.array([tuned["offsets"][name] for name in data.test.class_names])
        record.update(validation_offsets=tuned["offsets"], test_macro_f1_validation_offsets=tuned["macro_f1"],
                      test_pred_validation_offsets=np.argmax(metrics.offset_probs(probs, offsets), axis=-1).tolist())
    if store_probs:
        record["test_probs"] = np.round(probs, 5).tolist()
    if validation_pred:
        record["validation_pred"] = np.argmax(validation_probs[0], axis=-1).astype(int).tolist()
        if store_probs:
            record["validation_probs"] = np.round(validation_probs[0], 5).tolist()
    if not keep_runs:
        keep = (run_folder.SUMMARY, run_folder.AUDIT, run_folder.CONFIG)
        for entry in os.listdir(run_dir):
            path = os.path.join(run_dir, entry)
            if entry not in keep:
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    return record


# -- aggregation -------------------------------------------------------------------------------
def _macro_f1_rounds(labels, preds_by_seed, n_classes, rounds, seed):
    """``(rounds,)`` seed-mean macro-F1 on each bootstrap resample of the test records, and the point."""
    import numpy as np

    from erts_tf import bootstrap, metrics

    labels = np.asarray(labels)
    preds = [np.asarray(p) for p in preds_by_seed]
    present = metrics.present_classes(labels, n_classes)  # macro-F1 over the classes present

    def macro_f1(index):
        values = []
        for p in preds:
            f1 = metrics.prf_by_round(labels[index], p[index], n_classes)["f1"]
            values.append(f1[:, present].mean(axis=1))
        return np.mean(values, axis=0)

    out = np.concatenate([macro_f1(index) for index in bootstrap.resample_chunks(len(labels), rounds, seed)])
    return out, float(macro_f1(np.arange(len(labels))[None])[0])


def _interval(point, rounds_values):
    from erts_tf import bootstrap

    low, high = bootstrap.percentile_interval(rounds_values, 0.95)
    return {"point": point, "low": low, "high": high}


def _after0(record) -> float:
    return sum(e["train_s"] for e in record["epochs"] if e["epoch"] > 0)


def aggregate(args, records, labels, n_classes) -> dict:
    import numpy as np

    by_key = {}
    for r in records:
        by_key.setdefault((r["level"], r["mode"]), []).append(r)
    full_by_seed = {r["seed"]: r for r in records if r["mode"] == "full" and r["level"] == "epoch"}
    for r in records:
        base = full_by_seed[r["seed"]]
        r["ratios"] = {
            "run_wall": r["run_wall_s"] / base["run_wall_s"],
            "train_wall": r["train_s"] / base["train_s"],
            "cpu": r["cpu_s"] / base["cpu_s"],
            # without epoch 0 (a full-data epoch in every mode that also holds the first tracing)
            "train_wall_after_epoch0": _after0(r) / _after0(base),
            # the run's own ledger ratio is relative to full training for the run's epochs: full_matched
            # trains fewer epochs, so its share of full's work is scaled by the epoch counts
            "work": r["total_work_ratio"] * len(r["epochs"]) / len(base["epochs"]),
        }
        r["wall_vs_work"] = r["ratios"]["train_wall"] / r["ratios"]["work"] - 1.0
    rounds_by_key, rows = {}, {}
    for (level, mode), group in by_key.items():
        group = sorted(group, key=lambda g: g["seed"])
        boot, point = _macro_f1_rounds(labels, [g["test_pred"] for g in group], n_classes, args.rounds, seed=0)
        rounds_by_key[(level, mode)] = boot
        mean = lambda k: float(np.mean([g[k] for g in group]))  # noqa: E731
        ratio = lambda k: float(np.mean([g["ratios"][k] for g in group]))  # noqa: E731
        rows[f"{level}/{mode}"] = {
            "train_wall_after_epoch0_ratio": ratio("train_wall_after_epoch0"),
            "level": level, "mode": mode, "seeds": [g["seed"] for g in group],
            "test_macro_f1_mean": point, "test_macro_f1_ci": _interval(point, boot),
            "test_macro_f1_by_seed": [g["test_macro_f1"] for g in group],
            "test_macro_f1_std": float(np.std([g["test_macro_f1"] for g in group], ddof=1)) if len(group) > 1 else None,
            "effective_epochs": mean("effective_epochs"), "total_work_ratio": ratio("work"),
            "train_wall_ratio": ratio("train_wall"), "run_wall_ratio": ratio("run_wall"), "cpu_ratio": ratio("cpu"),
            "train_s": mean("train_s"), "run_wall_s": mean("run_wall_s"), "cpu_s": mean("cpu_s"),
            "rss_peak_bytes": max(g["rss_peak_bytes"] for g in group),
            "rss_increase_bytes": float(np.mean([g["rss_peak_bytes"] - g["rss_start_bytes"] for g in group])),
            "best_epochs": [g["best_epoch"] for g in group],
            "wall_vs_work": float(np.mean([g["wall_vs_work"] for g in group])),
        }
    if ("batch", "full") not in rounds_by_key and ("epoch", "full") in rounds_by_key and "full" in args.batch_modes:
        rows["batch/full"] = {**rows["epoch/full"], "level": "batch", "reused_from": "epoch/full"}
        rounds_by_key[("batch", "full")] = rounds_by_key[("epoch", "full")]
    comparisons = {}
    focus = getattr(args, "focus_mode", None) or "erts"
    pairs = [(focus, other) for other in (*COMPARE_WITH, *VARIANTS) if other != focus]
    # every mode against full and against the peer a user would pick instead (infobatch)
    peer = getattr(args, "peer", "infobatch")
    pairs += [(m, base) for m in {k[1] for k in rounds_by_key} for base in ("full", peer)
              if m not in (base, focus)]
    for level in ("epoch", "batch"):
        for a_mode, b_mode in dict.fromkeys(pairs):
            if (level, a_mode) not in rounds_by_key or (level, b_mode) not in rounds_by_key:
                continue
            diff = rounds_by_key[(level, a_mode)] - rounds_by_key[(level, b_mode)]
            a, b = rows[f"{level}/{a_mode}"], rows[f"{level}/{b_mode}"]
            comparisons[f"{level}: {a_mode} - {b_mode}"] = {
                "macro_f1_difference": _interval(a["test_macro_f1_mean"] - b["test_macro_f1_mean"], diff),
                "work_ratio": [a["total_work_ratio"], b["total_work_ratio"]],
                "train_wall_ratio": [a["train_wall_ratio"], b["train_wall_ratio"]],
                "verdict": _verdict(a, b, _interval(0.0, diff)),
            }
    return {"rows": rows, "comparisons": comparisons, "targets": _targets(rows, records, focus, comparisons, peer),
            "convergence": _convergence(records), "label_noise": noisy_label_summary(records)}


NOISE_FACTS = ("loss_auroc", "focus_auroc", "focus_auroc_hard", "flipped_share", "flipped_share_hard",
               "flipped_share_kept", "flipped_share_low_focus")


def noisy_label_summary(records) -> dict:
    """Per mode (runs with ``label_noise_epochs``): each of ``NOISE_FACTS`` averaged over the epochs >= 1
    where it is defined and then over seeds; ``{}`` without label noise."""
    import numpy as np

    by_mode = {}
    for r in records:
        if r.get("label_noise_epochs"):
            by_mode.setdefault(r["mode"], []).append(r["label_noise_epochs"])
    summary = {}
    for mode, runs in by_mode.items():
        row = {}
        for fact in NOISE_FACTS:
            per_run = [np.mean(v) for v in ([e[fact] for e in run if e["epoch"] >= 1 and e[fact] is not None]
                                            for run in runs) if v]
            row[fact] = float(np.mean(per_run)) if per_run else None
        summary[mode] = row
    return summary


def _convergence(records, last: int = 5) -> dict:
    """Whether full has converged: its validation macro-F1 over the last ``last`` epochs, per seed
    (range and least-squares slope per epoch; flat means a range <= 0.03 and |slope| <= 0.005)."""
    import numpy as np

    out = {}
    for r in records:
        if r["mode"] != "full":
            continue
        values = [e["val_macro_f1"] for e in r["epochs"] if e.get("val_macro_f1") is not None][-last:]
        if len(values) < 2:
            continue
        slope = float(np.polyfit(np.arange(len(values)), values, 1)[0])
        spread = float(max(values) - min(values))
        out[f"seed {r['seed']}"] = {"last_val_macro_f1": values, "range": spread, "slope_per_epoch": slope,
                                   "flat": spread <= 0.03 and abs(slope) <= 0.005}
    return out


def _verdict(a, b, diff) -> str:
    """erts (a) against another mode (b): quality from the paired bootstrap, cost from the work ratio."""
    cheaper = a["total_work_ratio"] <= b["total_work_ratio"] and a["train_wall_ratio"] <= b["train_wall_ratio"] * 1.05
    if diff["low"] is not None and diff["low"] > 0:
        quality = "better"
    elif diff["high"] is not None and diff["high"] < 0:
        quality = "worse"
    else:
        quality = "not distinguishable"
    cost = "at lower or equal cost" if cheaper else "at higher cost"
    return f"macro-F1 {quality} (paired 95 % CI of the difference), {cost}"


def _targets(rows, records, focus="erts", comparisons=None, peer="infobatch") -> dict:
    targets = {}
    comparisons = comparisons or {}
    new, full, infobatch = rows.get(f"epoch/{focus}"), rows.get("epoch/full"), rows.get(f"epoch/{peer}")
    if focus != "erts" and new and full:
        low = full["test_macro_f1_ci"]["low"]
        targets["selection_pays"] = {
            "target": f"{focus}: macro-F1 >= full's 95 % lower bound at <= 0.45 x full's total work and <= 0.50 x its "
                      "training wall-clock",
            "macro_f1": new["test_macro_f1_mean"], "full_ci_low": low, "work": new["total_work_ratio"],
            "train_wall": new["train_wall_ratio"], "cpu": new["cpu_ratio"],
            "met_quality": low is not None and new["test_macro_f1_mean"] >= low,
            "met_work": new["total_work_ratio"] <= 0.45, "met_wall": new["train_wall_ratio"] <= 0.50,
        }
        if infobatch:
            diff = comparisons.get(f"epoch: {focus} - {peer}", {}).get("macro_f1_difference", {})
            targets["not_below_infobatch"] = {
                "target": f"{focus} not below {peer} (paired 95 % CI of the difference not entirely < 0) at the same "
                          "or lower total work",
                "difference": diff, "work": [new["total_work_ratio"], infobatch["total_work_ratio"]],
                "met": diff.get("high") is not None and diff["high"] >= 0
                and new["total_work_ratio"] <= infobatch["total_work_ratio"],
            }
        matched = comparisons.get(f"epoch: {focus} - full_matched")
        if matched:
            diff = matched["macro_f1_difference"]
            targets["beats_full_on_matched_budget"] = {
                "target": f"{focus} beats full on a matched budget (paired 95 % CI of the difference > 0)",
                "difference": diff, "met": diff["low"] is not None and diff["low"] > 0,
            }
    full, erts = rows.get("epoch/full"), rows.get("epoch/erts")
    if full and erts:
        low = full["test_macro_f1_ci"]["low"]
        targets["erts_epoch_quality"] = {
            "target": "erts (epoch level) test macro-F1 >= full's 95 % CI lower bound",
            "erts": erts["test_macro_f1_mean"], "full_ci_low": low,
            "met": low is not None and erts["test_macro_f1_mean"] >= low,
        }
        targets["erts_epoch_wall_clock"] = {
            "target": "erts (epoch level) wall-clock <= 0.45 x full's",
            "train_wall_ratio": erts["train_wall_ratio"], "run_wall_ratio": erts["run_wall_ratio"],
            "met_train_wall": erts["train_wall_ratio"] <= 0.45, "met_run_wall": erts["run_wall_ratio"] <= 0.45,
        }
    within = {k: {"train_wall_ratio": r["train_wall_ratio"], "total_work_ratio": r["total_work_ratio"],
                  "relative_difference": r["wall_vs_work"], "met": abs(r["wall_vs_work"]) <= 0.10}
              for k, r in rows.items() if r["mode"] != "full" and "reused_from" not in r}
    targets["wall_clock_tracks_work"] = {
        "target": "train wall-clock ratio within 10 % of the total-work ratio (relative)", "by_run_kind": within,
        "met_all": all(v["met"] for v in within.values()),
    }
    return targets


# -- output ------------------------------------------------------------------------------------
def tables(result) -> str:
    rows = result["aggregate"]["rows"]
    n_seeds = len(result["settings"]["seeds"])
    lines = []
    for level in ("epoch", "batch"):
        keyed = [r for r in rows.values() if r["level"] == level]
        if not keyed:
            continue
        named = ("full", "full_matched", "dbpd", "srd", "smrd", "erts", "erts_reference", "erts_srd", "erts_smrd",
                 *VARIANTS)
        order = {m: i for i, m in enumerate(dict.fromkeys(named))}
        keyed.sort(key=lambda r: order.get(r["mode"], 99))
        body = [[
            r["mode"] + (" (=epoch full)" if "reused_from" in r else ""),
            common.fmt_ci(r["test_macro_f1_ci"]),
            common.fmt(r["test_macro_f1_std"], ".3f"),
            common.fmt(r["effective_epochs"], ".2f"),
            common.fmt(r["total_work_ratio"], ".3f"),
            common.fmt(r["train_wall_ratio"], ".3f"),
            common.fmt(r["train_wall_after_epoch0_ratio"], ".3f"),
            common.fmt(r["run_wall_ratio"], ".3f"),
            common.fmt(r["cpu_ratio"], ".3f"),
            common.mib(r["rss_increase_bytes"]),
            ",".join(str(b) for b in r["best_epochs"]),
        ] for r in keyed]
        lines.append(f"\n{level} level ({n_seeds} seed{'s' if n_seeds > 1 else ''}; ratios relative to full, same seed, same process)\n")
        lines.append(common.markdown_table(
            ["mode", "test macro-F1 [95% CI]", "sd seeds", "eff. epochs", "work", "train wall", "train wall ep>=1", "run wall", "CPU", "peak RSS +MiB", "best epoch"],
            body))
    comparisons = result["aggregate"]["comparisons"]
    if comparisons:
        lines.append("\npaired comparisons (bootstrap over the test records, seed-mean macro-F1)\n")
        lines.append(common.markdown_table(
            ["comparison (a - b)", "F1 difference [95% CI]", "work (a / b)", "train wall (a / b)", "verdict"],
            [[k, common.fmt_ci(v["macro_f1_difference"], "+.3f"),
              f"{v['work_ratio'][0]:.3f} / {v['work_ratio'][1]:.3f}",
              f"{v['train_wall_ratio'][0]:.3f} / {v['train_wall_ratio'][1]:.3f}", v["verdict"]]
             for k, v in comparisons.items()], "lllll"))
    targets = result["aggregate"]["targets"]
    lines.append("\ntargets\n")
    if "erts_epoch_quality" in targets:
        q, w = targets["erts_epoch_quality"], targets["erts_epoch_wall_clock"]
        lines.append(f"- {q['target']}: erts {q['erts']:.3f} vs full CI low {common.fmt(q['full_ci_low'])} -> "
                     f"{'MET' if q['met'] else 'NOT MET'}")
        lines.append(f"- {w['target']}: train wall {w['train_wall_ratio']:.3f} ({'MET' if w['met_train_wall'] else 'NOT MET'}), "
                     f"run wall {w['run_wall_ratio']:.3f} ({'MET' if w['met_run_wall'] else 'NOT MET'})")
    for key in ("selection_pays", "not_below_infobatch", "beats_full_on_matched_budget"):
        if key not in targets:
            continue
        t = targets[key]
        if key == "selection_pays":
            lines.append(f"- {t['target']}: macro-F1 {t['macro_f1']:.3f} vs full CI low {common.fmt(t['full_ci_low'])} "
                         f"({'MET' if t['met_quality'] else 'NOT MET'}), work {t['work']:.3f} "
                         f"({'MET' if t['met_work'] else 'NOT MET'}), train wall {t['train_wall']:.3f} "
                         f"({'MET' if t['met_wall'] else 'NOT MET'}), CPU {t['cpu']:.3f}")
        else:
            lines.append(f"- {t['target']}: difference {common.fmt_ci(t['difference'], '+.3f')} -> "
                         f"{'MET' if t['met'] else 'NOT MET'}")
    noise = result["aggregate"].get("label_noise") or {}
    if noise:
        lines.append(f"- label noise: {result['settings']['label_noise']:.0%} of the training labels flipped; per mode, "
                     "mean over epochs >= 1 and seeds (AUROC with the flipped samples as positives):\n")
        lines.append(common.markdown_table(
            ["mode", "AUROC loss", "AUROC -focus", "AUROC -focus, hard", "flipped: all", "hard", "kept",
             "low_focus drops"],
            [[mode, *(common.fmt(row[f], ".3f") for f in NOISE_FACTS)] for mode, row in noise.items()]))
    convergence = result["aggregate"].get("convergence") or {}
    for seed, c in convergence.items():
        lines.append(f"- full converged ({seed}): last validation macro-F1 {', '.join(f'{v:.3f}' for v in c['last_val_macro_f1'])}"
                     f"; range {c['range']:.3f}, slope {c['slope_per_epoch']:+.4f}/epoch -> {'flat' if c['flat'] else 'NOT flat'}")
    t = targets["wall_clock_tracks_work"]
    parts = [f"{k} {v['relative_difference']:+.0%}{'' if v['met'] else ' (no)'}" for k, v in t["by_run_kind"].items()]
    lines.append(f"- {t['target']}: {'MET for all' if t['met_all'] else 'NOT met for all'}: " + ", ".join(parts))
    return "\n".join(lines)


def plot(result, path) -> pathlib.Path | None:
    plt = common.pyplot()
    rows = result["aggregate"]["rows"]
    colors = {"full": "black", "dbpd": "tab:blue", "srd": "tab:gray", "smrd": "tab:orange", "erts": "tab:red",
              "erts_srd": "tab:pink", "erts_smrd": "tab:purple", "full_matched": "tab:brown", "infobatch": "tab:cyan",
              "infobatch_r07": "tab:olive", "erts_infobatch": "tab:green", "erts_reference": "darkred",
              "erts_infobatch_r05": "lime", "infobatch_r09": "tab:blue", "erts_infobatch_r09": "darkgreen",
              "erts_infobatch_r09_f6": "olive", "infobatch_r09_a2": "navy", "erts_infobatch_r09_f6_a2": "yellowgreen"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for r in rows.values():
        if "reused_from" in r:
            continue
        ci = r["test_macro_f1_ci"]
        y = r["test_macro_f1_mean"]
        err = [[y - ci["low"]], [ci["high"] - y]] if ci["low"] is not None else None
        ax1.errorbar(r["train_wall_ratio"], y, yerr=err, fmt="o" if r["level"] == "epoch" else "s",
                     color=colors.get(r["mode"], "green"), mfc=colors.get(r["mode"], "green") if r["level"] == "epoch" else "white",
                     capsize=3, label=f"{r['mode']} ({r['level']})")
    ax1.axvline(0.45, ls=":", color="gray")
    ax1.set_xlabel("training wall-clock relative to full (same seed, same process)")
    ax1.set_ylabel("test macro-F1 (seed mean, 95 % bootstrap CI)")
    ax1.set_title("quality against wall-clock")
    ax1.legend(fontsize=7)
    first_seed = result["settings"]["seeds"][0]
    for r in result["runs"]:
        if r["seed"] != first_seed:
            continue
        ax2.plot([e["epoch"] for e in r["epochs"]], [e["kept_fraction"] for e in r["epochs"]],
                 "-" if r["level"] == "epoch" else "--", color=colors.get(r["mode"], "green"),
                 label=f"{r['mode']} ({r['level']})")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("back-propagated share of the training split")
    ax2.set_title(f"kept fraction per epoch (seed {first_seed})")
    ax2.legend(fontsize=7)
    fig.suptitle(f"{result['settings']['dataset']}/{result['settings']['dataset_config']}, {result['settings']['model']}, "
                 f"{result['settings']['epochs']} epochs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return pathlib.Path(path)


def reaggregate(args) -> dict:
    """Recomputes aggregate, tables and plot from the runs stored in a modes JSON."""
    import json

    path = pathlib.Path(args.reaggregate)
    written = json.loads(path.read_text())
    result = {**written, "runs": common.read_records(written, path)}
    stored = argparse_namespace(result["settings"])
    n_classes = len(result["class_names"]) if "class_names" in result else 1 + max(result["test_labels"])
    result["aggregate"] = written["aggregate"] = aggregate(stored, result["runs"], result["test_labels"], n_classes)
    text = tables(result)
    print(text)
    common.write_json(path, written)
    plot(result, path.with_suffix(".png"))
    result["table"] = text
    return result


def argparse_namespace(settings: dict):
    import argparse

    return argparse.Namespace(**settings)


def main(argv=None) -> dict:
    args = parse(argv)
    if args.reaggregate:
        return reaggregate(args)
    common.quiet_tensorflow()
    from erts_tf.training import run

    started = time.perf_counter()
    machine_before = common.machine()
    data = run.load_data(_config(args, "full", "epoch", 0, os.path.join(args.work_dir, "unused")))
    if args.label_noise:
        data = with_label_noise(data, args.label_noise, args.label_noise_seed)
    combos = _combos(args)
    runs_dir = common.runs_dir(args, NAME)
    records, files = [], []
    for index, seed in enumerate(args.seeds):
        shift = index % len(combos)
        order = combos[shift:] + combos[:shift]
        if args.variants:  # full_matched needs its target's run of the same seed first
            order.sort(key=lambda c: c[1] == "full_matched")
        for level, name in order:
            path = runs_dir / f"{level}_{name}_s{seed}.json"
            files.append(path.name)
            if path.exists():
                import json

                records.append(json.loads(path.read_text()))
                print(f"seed {seed} {level:>5} {name:<9} reused {path}", flush=True)
                continue
            if args.variants:
                record = run_one(args, data, VARIANTS[name]["mode"], level, seed,
                                 _variant_overrides(args, name, seed, records), name=name)
            else:
                record = run_one(args, data, name, level, seed)
            common.write_json(path, record)
            records.append(record)
            print(f"seed {seed} {level:>5} {name:<9} test macro-F1 {record['test_macro_f1']:.3f}  eff. epochs "
                  f"{record['effective_epochs']:.2f}  work {record['total_work_ratio']:.3f}  train {record['train_s']:.1f}s  "
                  f"run {record['run_wall_s']:.1f}s  cpu {record['cpu_s']:.1f}s", flush=True)
    summary = aggregate(args, records, data.test.label, len(data.test.class_names))
    result = {
        "benchmark": NAME,
        "settings": {k: v for k, v in vars(args).items()},
        "dataset_sizes": {"train": data.train.n, "validation": data.validation.n, "test": data.test.n},
        "machine": machine_before,
        "machine_end": {"loadavg": list(os.getloadavg()), "maxrss_lifetime_bytes": common.max_rss_bytes()},
        "total_wall_s": time.perf_counter() - started,
        "aggregate": summary,
        "runs": records,
        "test_labels": data.test.label.astype(int).tolist(),
        "class_names": list(data.test.class_names),
    }
    written = common.naming_records(result, common.output_path(args, NAME), runs_dir, files, RUN_HEADLINES)
    return common.publish(args, NAME, result, tables(result), plot, written)


if __name__ == "__main__":
    main()
