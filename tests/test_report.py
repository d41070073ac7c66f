"""Reports: run report files, comparison, audit summary, TensorBoard extras."""

import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from erts_tf.report import audit_summary, report

PNG = b"\x89PNG\r\n\x1a\n"


def _copy_run(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoints", "export", "eval_*.json", "*.png", "*.md"))
    return str(dst)


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG


def test_run_report_files(trained_run, tmp_path):
    out = tmp_path / "report"
    path = report.write_run_report(trained_run, str(out), top=5, gradcam_examples=2)
    text = open(path).read()
    for name in ("kept_fraction.png", "cost_vs_f1.png", "gradcam_validation.png"):
        assert _is_png(out / name), name
        assert f"]({name})" in text
    assert "## Data-quality audit" in text and "| sample_id | label | low_focus_drops |" in text
    assert "corruption" in text  # the synthetic dataset's ground-truth extra is listed
    summary = json.loads(open(os.path.join(trained_run, "summary.json")).read())
    assert f"| test macro-F1 | {summary['test']['macro_f1']:.4f} |" in text
    for e in summary["epochs"]:
        assert f"| {e['epoch']} | {e['phase']} | {e['kept_fraction']:.3f} |" in text


def test_validation_f1_falls_back_to_tensorboard(trained_run, tmp_path):
    epochs = json.loads(open(os.path.join(trained_run, "summary.json")).read())["epochs"]
    from_ledger = report.validation_f1(trained_run, epochs)
    assert all(v is not None for v in from_ledger)
    stripped = [{k: v for k, v in e.items() if k != "val_macro_f1"} for e in epochs]
    from_events = report.validation_f1(trained_run, stripped)
    np.testing.assert_allclose(from_events, from_ledger, atol=1e-6)
    assert report.validation_f1(str(tmp_path), stripped) == [None] * len(epochs)  # no logs: unknown, no error


def test_compare_runs(trained_run, tmp_path):
    a = _copy_run(trained_run, tmp_path / "erts_run")
    b = _copy_run(trained_run, tmp_path / "full_run")
    summary_b = json.loads(open(os.path.join(b, "summary.json")).read())
    summary_b["config"]["mode"] = "full"
    summary_b["cost"]["total_work_sample_passes"] *= 2
    with open(os.path.join(b, "summary.json"), "w") as f:
        json.dump(summary_b, f)
    out = tmp_path / "cmp"
    path, rows = report.compare_runs([a, b], str(out), evaluate_missing=True, rounds=200, seed=0)
    assert [r["mode"] for r in rows] == ["erts", "full"]
    for r in rows:
        assert r["ci_low"] <= r["macro_f1"] <= r["ci_high"]
        assert os.path.exists(os.path.join(r["run_dir"], "eval_test.json"))  # evaluated on the way
    text = open(path).read()
    assert "| erts_run | resnet1d | erts | epoch |" in text and "| full_run | resnet1d | full | epoch |" in text
    assert _is_png(out / "comparison.png")


def test_report_cli_errors(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for args, message in (([], "at least one run"), (["a", "b"], "--out"), ([str(tmp_path)], "summary.json")):
        result = subprocess.run([sys.executable, "-m", "erts_tf.report", *args], capture_output=True, text=True,
                                env=env, timeout=120)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and len(errors) == 1 and message in errors[0], result.stderr


def _audit():
    rows = [  # epoch, sample_id, label, decision, reason, weight, p_true, focus, scored_epoch, focus_epoch,
              # score_forward, corruption
        (2, 1, "af", "dropped", "low_focus", 0.0, 0.6, 0.05, 1, 1, "training", "burst_noise"),
        (3, 1, "af", "kept", "focused", 1.0, 0.5, 0.30, 2, 2, "training", "burst_noise"),
        (5, 1, "af", "dropped", "low_focus", 0.0, 0.7, 0.04, 4, 4, "inference", "burst_noise"),
        (2, 2, "normal", "dropped", "confident", 0.0, 0.99, 0.1, 1, 1, "training", "none"),
        (2, 3, "normal", "dropped", "low_focus", 0.0, 0.8, 0.02, 1, 1, "training", "none"),
        (4, 3, "normal", "kept", "hard", 1.0, 0.2, 0.02, 3, 3, "inference", "none"),
        (2, 4, "st", "dropped", "low_focus", 0.0, 0.8, 0.03, 1, 1, "training", "flat_lead"),
    ]
    return pd.DataFrame(rows, columns=[*audit_summary.BASE_COLUMNS, "corruption"])


def test_low_focus_records_ranks_repeat_offenders():
    table = audit_summary.low_focus_records(_audit(), n_epochs=8)
    assert table["sample_id"].tolist() == [1, 4, 3]
    first = table.iloc[0]
    assert first["low_focus_drops"] == 2 and first["epochs_dropped"] == (3 - 2) + (8 - 5)
    assert first["corruption"] == "burst_noise"
    assert table.set_index("sample_id").loc[4, "epochs_dropped"] == 6
    assert table.set_index("sample_id").loc[3, "epochs_dropped"] == 2
    assert len(audit_summary.low_focus_records(_audit(), n_epochs=8, top=1)) == 1


def test_extras_breakdown_shares():
    breakdown = audit_summary.extras_breakdown(_audit())["corruption"]
    low = breakdown["low_focus (n=3)"]
    assert low["burst_noise"] == pytest.approx(1 / 3) and low["flat_lead"] == pytest.approx(1 / 3)
    assert breakdown["confident (n=1)"]["none"] == 1.0
    assert breakdown["all audited (n=4)"].sum() == pytest.approx(1.0)


def test_tensorboard_extras_writes_histograms_and_images(trained_run, tiny_data, tmp_path):
    import tensorflow as tf

    from erts_tf import run_folder
    from erts_tf.training import run
    from erts_tf.training.tensorboard_extras import TensorBoardExtras

    model = run.build_model(run_folder.read_config(trained_run), tiny_data)
    model.backbone.load_weights(run_folder.path(trained_run, run_folder.BEST_WEIGHTS))
    state = model.state
    n = state.n
    rng = np.random.default_rng(0)
    state.p_true.assign(rng.random(n).astype(np.float32))
    state.focus.assign(rng.random(n).astype(np.float32))
    state.scored_epoch.assign(np.zeros(n, np.int32))
    state.keep.assign(np.arange(n) % 3 != 0)
    state.counters["gradcam"].assign(n)
    callback = TensorBoardExtras(model, str(tmp_path), tiny_data.validation, every=5, n_examples=3)
    callback.set_model(model)
    callback.on_epoch_end(0)
    callback.on_epoch_end(1)
    callback.on_train_end()

    tags = {}
    for path in glob.glob(str(tmp_path / "extras" / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append((event.step, value))
    for group in ("kept", "dropped"):
        assert [s for s, _ in tags[f"selection/p_true_{group}"]] == [0, 1]
        assert [s for s, _ in tags[f"selection/focus_{group}"]] == [0, 1]
    images = tags["gradcam/validation"]
    assert [s for s, _ in images] == [0, 1]  # epoch 0 (every 5) and the last epoch at train end
    encoded = tf.make_ndarray(images[0][1].tensor)  # [width, height, png]
    assert encoded[2][:8] == PNG
    (tmp_path / "gradcam_tensorboard.png").write_bytes(encoded[2])
