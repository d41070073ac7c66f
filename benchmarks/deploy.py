"""Deployment variants side by side: size, CPU latency per record and parity of the float32, float16 and int8 ONNX models.

For each backbone of ``--models`` (default resnet1d and the 2-D resnet18_2d)
on ``--dataset`` (default the PTB-XL 100 Hz subset in ``../shared/data``): the
trained run named in ``--run_dirs`` or, for a backbone without one, a short
run trained here (the recommended recipe and selection, ``erts_infobatch``,
``--epochs`` epochs). The run is exported with ``export.export_run`` into
``<work_dir>/deploy/<model>/export``, keeping the three int8 candidates
(static QDQ, static QDQ with the input layer(s) and the classifier in float32,
dynamic; ``export.quantize``). That one call measures, in one process and side
by side (``export.latency``: ``--repeats`` interleaved rounds, ``--threads``
onnxruntime threads): the model size, and the milliseconds per record at
batch 1 and batch 32, of float32, float16 and each int8 candidate.
On the whole test split it also measures, against float32: the argmax
agreement, the macro-F1 difference and the max |probability difference|.
The table also marks which int8 method the export kept as
``model.int8.onnx`` and checks issue 18's targets on it: at most 0.35x the
size, at most 0.7x the latency (batch 1 and 32), at least 99 % argmax
agreement, macro-F1 within 0.01.

Usage:
  python benchmarks/deploy.py                       # resnet1d + resnet18_2d on PTB-XL 100 Hz, short runs trained here
  python benchmarks/deploy.py --run_dirs resnet1d=runs/ptbxl,resnet18_2d=runs/ptbxl_r18
  python benchmarks/deploy.py --smoke               # synthetic_ecg/tiny, resnet1d, 2 epochs, 2 rounds

Writes benchmarks/results/deploy.json (deploy_smoke.json with --smoke).
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common  # noqa: E402
import modes  # noqa: E402

NAME = "deploy"
TARGETS = {"size_ratio": 0.35, "latency_ratio": 0.7, "argmax_agreement": 0.99, "macro_f1_diff": 0.01}
SELECTION = dict(modes.VARIANTS["erts_infobatch"], start_revision=-1)  # configs/recommended_selection.cfg
ROWS = ("float32", "float16", "int8_static", "int8_static_mixed", "int8_dynamic")


def parse(argv=None):
    parser = common.base_parser(__doc__, NAME)
    parser.add_argument("--dataset", default=None, help="default ptbxl (synthetic_ecg with --smoke)")
    parser.add_argument("--dataset_config", default=None, help="default 100hz (tiny with --smoke)")
    parser.add_argument("--models", default=None, help="comma-separated backbones (default resnet1d,resnet18_2d; "
                                                       "resnet1d with --smoke)")
    parser.add_argument("--run_dirs", default="", help="model=run_dir,... trained runs to export instead of training")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of a run trained here (default 10; 2 with --smoke)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=None,
                        help="side-by-side latency rounds (default 20; 2 with --smoke)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.dataset = args.dataset or ("synthetic_ecg" if smoke else "ptbxl")
    args.dataset_config = args.dataset_config or ("tiny" if smoke else ("100hz" if args.dataset == "ptbxl" else None))
    args.models = [m for m in (args.models or ("resnet1d" if smoke else "resnet1d,resnet18_2d")).split(",") if m]
    args.run_dirs = dict(item.split("=", 1) for item in args.run_dirs.split(",") if "=" in item)
    unknown = sorted(set(args.run_dirs) - set(args.models))
    if unknown:
        parser.error(f"--run_dirs names {unknown}, which are not in --models {args.models}")
    args.epochs = args.epochs or (2 if smoke else 10)
    args.repeats = args.repeats or (2 if smoke else 20)
    return args


def train(args, model: str) -> tuple[str, float]:
    """A short run of ``model`` with the recommended recipe and selection; ``(run_dir, seconds)``."""
    from erts_tf.training import run
    from erts_tf.training.config import RunConfig

    output_dir = os.path.join(args.work_dir, NAME, model, "run")
    settings = dict(output_dir=output_dir, dataset=args.dataset, dataset_config=args.dataset_config,
                    data_dir=args.data_dir, manual_dir=args.manual_dir if args.dataset != "synthetic_ecg" else None,
                    model=model, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, level="epoch",
                    overwrite=True, verbose=0, report=False, tensorboard_images_every=0,
                    **modes.RECIPES["recommended"], **SELECTION)
    start = time.perf_counter()
    run.run(RunConfig(**settings))
    return output_dir, time.perf_counter() - start


def rows_of(metadata: dict) -> dict:
    """One row per ONNX model measured: size, latency and parity against float32 (``export.variants``' entries)."""
    files, latency = metadata["variants"]["files"], metadata["variants"]["latency"]
    entries = {"float32": files["float32"]}
    if "float16" in files:
        entries["float16"] = files["float16"]
    entries.update(files.get("int8", {}).get("candidates", {}))
    kept = files.get("int8", {}).get("chosen_method")
    rows = {}
    for name in ROWS:
        if name not in entries:
            continue
        entry = entries[name]
        rows[name] = {
            "size_bytes": entry["size_bytes"], "size_ratio": entry.get("size_ratio", 1.0),
            "ms_per_record": latency["ms_per_record"][name],
            "latency_ratio": entry.get("latency_ratio", {b: 1.0 for b in entry["ms_per_record"]}),
            "parity": entry.get("parity"), "within_bounds": entry.get("within_bounds"),
            "kept_as_int8": name == kept,
        }
    return rows


def targets(row: dict) -> dict:
    """Issue 18's targets for an int8 row: each ``True``/``False``."""
    p = row["parity"]
    return {
        "size_ratio <= 0.35": row["size_ratio"] <= TARGETS["size_ratio"],
        **{f"latency_ratio b{b} <= 0.7": r <= TARGETS["latency_ratio"] for b, r in row["latency_ratio"].items()},
        "argmax_agreement >= 0.99": p["argmax_agreement"] >= TARGETS["argmax_agreement"],
        "|macro_f1_diff| <= 0.01": abs(p["macro_f1_diff"]) <= TARGETS["macro_f1_diff"],
    }


def measure(args, model: str) -> dict:
    from export.run import export_run

    entry = {"model": model}
    run_dir = args.run_dirs.get(model)
    if run_dir is None:
        run_dir, entry["train_s"] = train(args, model)
    entry["run_dir"] = run_dir
    base = os.path.join(args.work_dir, NAME, model)
    start, load = time.perf_counter(), os.getloadavg()
    result = export_run(run_dir, os.path.join(base, "export"), data_dir=args.data_dir,
                        candidates_dir=os.path.join(base, "candidates"), latency_rounds=args.repeats,
                        threads=args.threads)
    metadata = result["metadata"]
    entry.update(export_s=time.perf_counter() - start, loadavg_start=list(load), loadavg_end=list(os.getloadavg()),
                 export_dir=os.path.join(base, "export"), keras_parity=metadata["parity"],
                 test_macro_f1=metadata["test_metrics"]["macro_f1"], parity_records=metadata["variants"]["parity_records"],
                 latency={k: v for k, v in metadata["variants"]["latency"].items() if k != "ms_per_record"},
                 rows=rows_of(metadata))
    kept = [name for name, row in entry["rows"].items() if row["kept_as_int8"]]
    if kept:
        entry["int8_kept"] = kept[0]
        entry["targets"] = targets(entry["rows"][kept[0]])
    return entry


def table(result: dict) -> str:
    lines = []
    for entry in result["models"]:
        records, latency = entry["parity_records"], entry["latency"]
        f1 = entry["test_macro_f1"]
        lines += [f"### {entry['model']} on {result['dataset']}/{result['dataset_config']} "
                  f"(test macro-F1 {common.fmt_ci(f1)}; parity on {records['n']} test records; latency: "
                  f"{latency['threads']} thread(s), median of {latency['rounds']} side-by-side rounds)", ""]
        batches = [str(b) for b in latency["batch_sizes"]]
        rows = []
        for name, row in entry["rows"].items():
            p = row["parity"]
            rows.append([name + (" (kept as int8)" if row["kept_as_int8"] else ""),
                         f"{row['size_bytes'] / 2**20:.2f}", common.fmt(row["size_ratio"], ".2f"),
                         *(f"{row['ms_per_record'][b]['median']:.3f}" for b in batches),
                         *(common.fmt(row["latency_ratio"][b], ".2f") for b in batches),
                         common.fmt(p and p["argmax_agreement"], ".3f"), common.fmt(p and p["macro_f1_diff"], "+.4f"),
                         common.fmt(p and p["max_abs_diff"], ".2e"),
                         "–" if row["within_bounds"] is None else str(row["within_bounds"])])
        lines.append(common.markdown_table(
            ["variant", "MiB", "size x", *(f"ms/rec b{b}" for b in batches), *(f"latency x b{b}" for b in batches),
             "argmax agree", "macro-F1 diff", "max abs diff", "within bounds"], rows))
        if "targets" in entry:
            lines += ["", f"int8 targets ({entry['int8_kept']}): "
                      + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in entry["targets"].items())]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse(argv)
    common.quiet_tensorflow()
    result = {"benchmark": NAME, "settings": dict(vars(args)), "machine": common.machine(), "targets": TARGETS,
              "dataset": args.dataset, "dataset_config": args.dataset_config,
              "models": [measure(args, model) for model in args.models]}
    return common.publish(args, NAME, result, table(result))


if __name__ == "__main__":
    main()
