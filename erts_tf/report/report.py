"""Markdown reports of a finished run, and a side-by-side comparison of runs.

``write_run_report(run_dir)`` writes into the run folder (or ``out_dir``):

* ``report.md``: configuration, results (test macro-F1 with its bootstrap
  interval when ``eval_test.json`` exists), cost, the per-epoch ledger and the
  data-quality audit (records dropped as unreliable, from ``audit.csv``);
* ``kept_fraction.png``, ``cost_vs_f1.png`` and, if the run's data can be
  loaded, ``gradcam_validation.png``.

``compare_runs(run_dirs, out_dir)`` writes ``comparison.md`` (mode, level,
test macro-F1 [95 % CI], effective epochs, total-work ratio, wall-clock) and
``comparison.png`` (test macro-F1 with CIs against total work). Runs without
``eval_test.json`` are evaluated first (``erts_tf.evaluate``, which writes it
into the run folder) unless ``evaluate_missing=False``.

The validation macro-F1 per epoch is read from the ledger
(``summary["epochs"][i]["val_macro_f1"]``) or, for runs written before the
ledger carried it, from the TensorBoard events in ``logs/validation``.
"""

from __future__ import annotations

import glob
import os

from erts_tf import run_folder
from erts_tf import figures
from erts_tf.report import audit_summary


class ReportError(Exception):
    """A run folder cannot be reported (message is for the user)."""


def load_run(run_dir: str) -> dict:
    """``{"summary", "eval_test"}`` of a finished run (``ReportError`` if it has no ``summary.json``)."""
    if not os.path.isdir(run_dir):
        raise ReportError(f"{run_dir}: no such folder")
    summary = run_folder.read_summary(run_dir)
    if summary is None:
        raise ReportError(f"{run_folder.path(run_dir, run_folder.SUMMARY)} does not exist: the run did not finish")
    return {"summary": summary, "eval_test": run_folder.read_eval(run_dir, "test")}


def tensorboard_scalars(log_dir: str, tag: str) -> dict[int, float]:
    """``{step: value}`` of scalar ``tag`` in the event files of ``log_dir`` (later files win)."""
    import tensorflow as tf

    values = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*")), key=os.path.getmtime):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    number = tf.make_ndarray(value.tensor) if value.HasField("tensor") else value.simple_value
                    values[int(event.step)] = float(number)
    return values


def validation_f1(run_dir: str, epochs: list[dict]) -> list[float | None]:
    """Validation macro-F1 after each ledger epoch: the ledger's ``val_macro_f1``, else TensorBoard's."""
    if epochs and all("val_macro_f1" in e for e in epochs):
        return [e["val_macro_f1"] for e in epochs]
    from_events = tensorboard_scalars(run_folder.path(run_dir, run_folder.LOGS, "validation"), "epoch_macro_f1")
    return [e.get("val_macro_f1", from_events.get(int(e["epoch"]))) for e in epochs]


def _fmt(value, spec=".4f") -> str:
    return "n/a" if value is None else format(value, spec)


def _ci_text(entry: dict | None) -> str:
    if not entry or entry.get("low") is None:
        return ""
    return f"[{entry['low']:.4f}, {entry['high']:.4f}]"


def test_f1_with_ci(run: dict) -> tuple[float, float | None, float | None]:
    """Test macro-F1 and its bootstrap interval (``eval_test.json``; None bounds without it)."""
    evaluation = run["eval_test"]
    if evaluation and "bootstrap" in evaluation:
        ci = evaluation["bootstrap"]["macro_f1"]
        return evaluation["metrics"]["macro_f1"], ci["low"], ci["high"]
    if evaluation:
        return evaluation["metrics"]["macro_f1"], None, None
    return run["summary"]["test"]["macro_f1"], None, None


def gradcam_overlay_png(run_dir: str, path: str, n_examples: int | None = None) -> str:
    """Draws the true-class Grad-CAM of ``model.keras`` on the first validation ECG of each class.

    ``n_examples``: ECGs drawn (default: one per class present, at most 8).
    """
    from erts_tf import models, run_data
    from erts_tf.explain.gradcam import cam_view
    from erts_tf.training import task as task_lib
    from erts_tf.training.tensorboard_extras import class_count, example_ids, gradcam_maps, gradcam_titles

    config = run_folder.read_config(run_dir)
    backbone = run_folder.load_model(run_dir)
    arrays = run_data.load_split(run_data.prepare_builder(config), config, "validation")
    task = task_lib.get(config.task)
    cam_model = cam_view(backbone, models.get(config.model).target_layer)
    n_examples = n_examples or min(8, class_count(arrays.label))
    ids = example_ids(arrays.label, n_examples)
    signal = arrays.model_inputs(ids)  # a run on windows: each record's first window
    maps, probs = gradcam_maps(cam_model, signal, arrays.label[ids], task)
    titles = gradcam_titles(ids, arrays.label[ids], probs, maps, arrays.class_names, task)
    lead = 1 if arrays.signal.shape[-1] > 1 else 0
    fig = figures.gradcam_overlay_figure(signal[..., lead], maps, titles, lead_name=f"lead {lead}",
                                       title=f"{config.model}: Grad-CAM of the true class (best weights)")
    return figures.save_png(fig, path)


def write_run_report(run_dir: str, out_dir: str | None = None, top: int = 20, gradcam_examples: int | None = None) -> str:
    """Writes ``report.md`` and its PNGs for one run; returns the path of ``report.md``.

    Args:
      run_dir: a finished run folder.
      out_dir: where to write (default: ``run_dir``).
      top: records listed in the audit table.
      gradcam_examples: validation ECGs in ``gradcam_validation.png`` (None: one per
        class, at most 8; 0: no figure). The figure needs the run's dataset and
        ``model.keras``; without them the report says why it is missing.
    """
    run = load_run(run_dir)
    out_dir = out_dir or run_dir
    os.makedirs(out_dir, exist_ok=True)
    summary = run["summary"]
    config, cost, epochs = summary["config"], summary["cost"], summary["epochs"]
    name = os.path.basename(os.path.normpath(run_dir))
    val_f1 = validation_f1(run_dir, epochs)

    figures.save_png(figures.kept_fraction_figure(epochs, f"{name}: kept fraction per epoch"),
                   run_folder.path(out_dir, run_folder.KEPT_FRACTION_PLOT))
    figures.save_png(figures.cost_vs_f1_figure(epochs, val_f1, summary["dataset"]["train"],
                                           f"{name}: validation macro-F1 vs cumulative cost (labels: epoch)"),
                   run_folder.path(out_dir, run_folder.COST_PLOT))

    test_f1, low, high = test_f1_with_ci(run)
    ci = f"[{low:.4f}, {high:.4f}]" if low is not None else "(run `python -m erts_tf.evaluate` for a CI)"
    lines = [
        f"# Run report: {name}",
        "",
        f"- dataset: `{config['dataset']}` ({config.get('dataset_config') or 'default'}), "
        f"train/validation/test = {summary['dataset']['train']}/{summary['dataset']['validation']}/{summary['dataset']['test']}",
        f"- model: `{config['model']}`; mode `{config['mode']}`, level `{config['level']}`; "
        f"{config['epochs']} epochs (warm-up {config['warm_up_epochs']}, cam start +{config['cam_start_epoch']}, "
        f"revision from {config['start_revision']}); seed {config['seed']}",
        "",
        "## Results",
        "",
        "| metric | value | 95% CI |",
        "|---|---|---|",
        f"| test macro-F1 | {test_f1:.4f} | {ci} |",
        f"| validation macro-F1 (kept weights) | {summary['validation']['macro_f1']:.4f} | |",
    ]
    if run["eval_test"]:
        auroc = run["eval_test"]["metrics"].get("macro_auroc")
        auroc_ci = _ci_text(run["eval_test"].get("bootstrap", {}).get("macro_auroc"))
        lines.append(f"| test macro AUROC | {_fmt(auroc)} | {auroc_ci} |")
    lines += [
        f"| best validation epoch | {summary['best_epoch']} | |",
        f"| weights kept: epoch | {summary.get('weights_epoch', summary['best_epoch'])} | |",
        f"| effective epochs (back-propagated samples / n_train) | {cost['effective_epochs']:.2f} | |",
        f"| total work (sample-passes) | {cost['total_work_sample_passes']} | |",
        f"| total-work ratio vs full training | {cost['total_work_ratio']:.3f} | |",
        f"| train wall-clock (s) | {cost['train_s']:.1f} | |",
        f"| run wall-clock (s) | {summary['wall_clock_s']:.1f} | |",
        "",
        "Per-class test metrics:",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
        *(f"| {c} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
          for c, v in summary["test"]["per_class"].items()),
        "",
        "## Selection and cost",
        "",
        f"![kept fraction per epoch]({run_folder.KEPT_FRACTION_PLOT})",
        "",
        f"![validation macro-F1 vs cumulative cost]({run_folder.COST_PLOT})",
        "",
        "| epoch | phase | kept fraction | backward | forward (score) | Grad-CAM | cumulative work | val macro-F1 | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    work = figures.cumulative_work(epochs)
    for e, w, f1 in zip(epochs, work, val_f1):
        lines.append(f"| {e['epoch']} | {e['phase']} | {e['kept_fraction']:.3f} | {e['backward']} | "
                     f"{e['forward_score']} | {e['gradcam']} | {w} | {_fmt(f1)} | {e['train_s']:.1f} |")
    lines += ["", *audit_section(run_dir, len(epochs), top)]
    if gradcam_examples is None or gradcam_examples > 0:
        lines += ["", "## Grad-CAM on validation ECGs", ""]
        try:
            gradcam_overlay_png(run_dir, run_folder.path(out_dir, run_folder.GRADCAM_PLOT), gradcam_examples)
            lines.append(f"![Grad-CAM overlays]({run_folder.GRADCAM_PLOT})")
        except Exception as error:  # the figure is optional: a report without data still gets written
            lines.append(f"Skipped: {str(error).splitlines()[0] if str(error) else type(error).__name__}")
    path = run_folder.path(out_dir, run_folder.REPORT)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def audit_section(run_dir: str, n_epochs: int, top: int = 20) -> list[str]:
    """Markdown lines of the data-quality audit of ``<run_dir>/audit.csv``."""
    lines = ["## Data-quality audit: records dropped as unreliable", ""]
    path = run_folder.path(run_dir, run_folder.AUDIT)
    if not os.path.isfile(path):
        return lines + [f"No {run_folder.AUDIT} in this run."]
    audit = audit_summary.read_audit(path)
    records = audit_summary.low_focus_records(audit, n_epochs, top)
    n_low = audit[(audit["decision"] == "dropped") & (audit["reason"] == audit_summary.UNRELIABLE)]["sample_id"].nunique()
    lines += [
        "Training records that the focus filter dropped (`low_focus`: not confidently classified and a diffuse "
        "Grad-CAM map). Records dropped often are candidates for a manual check of signal quality and label. "
        f"{n_low} distinct records were dropped as `low_focus` at least once"
        + (f"; the {len(records)} most frequent:" if len(records) else "."),
        "",
    ]
    if len(records):
        lines.append(audit_summary.markdown_table(records))
    breakdown = audit_summary.extras_breakdown(audit)
    for column, table in breakdown.items():
        lines += ["", f"Share of `{column}` values among the distinct records dropped per reason, "
                      "and among all records with an audit row:", "",
                  audit_summary.markdown_table(table.rename_axis(column), index=True)]
    return lines


def _labels(run_dirs: list[str]) -> list[str]:
    names = [os.path.basename(os.path.normpath(d)) for d in run_dirs]
    if len(set(names)) < len(names):
        names = [os.path.join(*os.path.normpath(os.path.abspath(d)).split(os.sep)[-2:]) for d in run_dirs]
    return names


def comparison_rows(run_dirs: list[str], evaluate_missing: bool = True, rounds: int = 1000, seed: int = 0) -> list[dict]:
    """One dict per run: label, mode, level, model, test macro-F1 and CI, cost totals, wall-clock."""
    rows = []
    for run_dir, label in zip(run_dirs, _labels(run_dirs)):
        run = load_run(run_dir)
        if run["eval_test"] is None and evaluate_missing:
            from erts_tf import evaluate

            run["eval_test"] = evaluate.evaluate(run_dir, "test", rounds, seed)
        summary = run["summary"]
        f1, low, high = test_f1_with_ci(run)
        cost = summary["cost"]
        rows.append({
            "label": label, "run_dir": os.path.abspath(run_dir), "model": summary["config"]["model"],
            "mode": summary["config"]["mode"], "level": summary["config"]["level"],
            "macro_f1": f1, "ci_low": low, "ci_high": high,
            "effective_epochs": cost["effective_epochs"], "total_work_ratio": cost["total_work_ratio"],
            "total_work": cost["total_work_sample_passes"], "train_s": cost["train_s"],
            "wall_clock_s": summary["wall_clock_s"],
        })
    return rows


def comparison_markdown(rows: list[dict]) -> str:
    """The side-by-side table of ``comparison_rows``."""
    lines = [
        "| run | model | mode | level | test macro-F1 [95% CI] | effective epochs | total-work ratio | "
        "total work (sample-passes) | train s | wall-clock s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ci = f" [{r['ci_low']:.4f}, {r['ci_high']:.4f}]" if r["ci_low"] is not None else ""
        lines.append(f"| {r['label']} | {r['model']} | {r['mode']} | {r['level']} | {r['macro_f1']:.4f}{ci} | "
                     f"{r['effective_epochs']:.2f} | {r['total_work_ratio']:.3f} | {r['total_work']} | "
                     f"{r['train_s']:.1f} | {r['wall_clock_s']:.1f} |")
    return "\n".join(lines)


def compare_runs(run_dirs: list[str], out_dir: str, evaluate_missing: bool = True, rounds: int = 1000,
                 seed: int = 0) -> tuple[str, list[dict]]:
    """Writes ``comparison.md`` and ``comparison.png`` into ``out_dir``; returns (Markdown path, rows)."""
    rows = comparison_rows(run_dirs, evaluate_missing, rounds, seed)
    os.makedirs(out_dir, exist_ok=True)
    figures.save_png(figures.comparison_figure([{**r, "label": f"{r['label']} ({r['mode']}/{r['level']})"} for r in rows]),
                   os.path.join(out_dir, "comparison.png"))
    evaluation = run_folder.eval_name("test")
    note = (f"Test macro-F1 from `{evaluation}` (`python -m erts_tf.evaluate`), 95% percentile bootstrap interval "
            f"over the test split; runs without an interval had no `{evaluation}` and were not evaluated.")
    text = "\n".join(["# Run comparison", "", comparison_markdown(rows), "", note, "",
                      "![test macro-F1 vs total work](comparison.png)", ""])
    path = os.path.join(out_dir, "comparison.md")
    with open(path, "w") as f:
        f.write(text)
    return path, rows


def comparison_table(rows: list[dict]) -> str:
    """Plain-text version of the comparison for the terminal."""
    head = f"{'run':<24}{'mode':<10}{'level':<7}{'test macro-F1 [95% CI]':<32}{'eff.ep':>8}{'work':>8}{'wall s':>9}"
    lines = [head]
    for r in rows:
        ci = f" [{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if r["ci_low"] is not None else ""
        lines.append(f"{r['label'][:23]:<24}{r['mode']:<10}{r['level']:<7}{r['macro_f1']:.4f}{ci:<26}"
                     f"{r['effective_epochs']:>8.2f}{r['total_work_ratio']:>8.3f}{r['wall_clock_s']:>9.1f}")
    return "\n".join(lines)
