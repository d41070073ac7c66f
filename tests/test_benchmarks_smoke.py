"""Smoke versions of the benchmarks (benchmarks/*.py --smoke): tiny data, tiny CNN, they run and write sane JSON.

They run in this process (not as subprocesses) so that the session's tiny
synthetic dataset and the test-only ``tiny_cnn`` backbone are reused.
"""

import importlib.util
import json
import pathlib
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"erts_tf_benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_machine(result):
    machine = result["machine"]
    for key in ("cpu", "cpu_count", "tensorflow", "keras", "date_utc"):
        assert machine[key], key


@pytest.fixture
def common_args(tmp_path, tfds_dir, tiny_data, tiny_backbone):
    del tiny_data  # builds synthetic_ecg/tiny in tfds_dir once
    return ["--smoke", "--model", tiny_backbone, "--data_dir", tfds_dir, "--work_dir", str(tmp_path / "work")]


def test_modes_smoke(tmp_path, common_args):
    out = tmp_path / "modes.json"
    result = _load("modes").main([*common_args, "--output", str(out), "--modes", "full,dbpd,erts", "--batch_modes", "full,erts"])
    saved = json.loads(out.read_text())
    _check_machine(saved)
    rows = saved["aggregate"]["rows"]
    assert set(rows) == {"epoch/full", "epoch/dbpd", "epoch/erts", "batch/erts", "batch/full"}
    assert rows["batch/full"]["reused_from"] == "epoch/full"
    full = rows["epoch/full"]
    assert full["train_wall_ratio"] == pytest.approx(1.0) and full["total_work_ratio"] == pytest.approx(1.0)
    assert full["effective_epochs"] == pytest.approx(3.0)
    for row in rows.values():
        ci = row["test_macro_f1_ci"]
        assert 0 <= ci["low"] <= ci["point"] <= ci["high"] <= 1
        assert row["rss_peak_bytes"] > 0
    assert rows["epoch/erts"]["effective_epochs"] <= 3.0
    assert "epoch: erts - dbpd" in saved["aggregate"]["comparisons"]
    assert out.with_suffix(".png").exists()
    assert "test macro-F1" in result["table"]


def test_step_overhead_smoke(tmp_path, common_args):
    out = tmp_path / "step.json"
    backbone = common_args[common_args.index("--model") + 1]
    args = [a for a in common_args if a not in ("--model", backbone)]  # this benchmark takes --backbones
    _load("step_overhead").main([*args, "--backbones", backbone, "--profile", "always", "--output", str(out)])
    saved = json.loads(out.read_text())
    _check_machine(saved)
    (row,) = saved["results"]
    assert row["backbone"] == backbone
    for variant in ("plain", "erts_nocam", "erts_cam"):
        assert row["variants"][variant]["n"] == 3 and row["variants"][variant]["median"] > 0
    assert row["ratio_cam"] > 0 and "profile" in row


def test_focus_validity_smoke(tmp_path, common_args):
    out = tmp_path / "focus.json"
    _load("focus_validity").main([*common_args, "--datasets", "synthetic_ecg,no_such_dataset", "--output", str(out)])
    saved = json.loads(out.read_text())
    _check_machine(saved)
    synthetic = saved["datasets"]["synthetic_ecg"]
    assert "no_such_dataset" in saved["datasets"]["no_such_dataset"]["error"]
    groups = synthetic["validity"]["all"]
    assert "any corruption" in groups
    for row in groups.values():
        assert set(row) >= {"top10_mean", "entropy", "gini", "topk_mass", "segments", "1 - p_true"}
        for ci in row.values():
            assert ci["point"] is None or 0 <= ci["low"] <= ci["point"] <= ci["high"] <= 1
    assert all(ci["point"] is not None for ci in groups["any corruption"].values())  # both classes present
    drops = synthetic["drops"]
    assert set(drops["modes"]) == {"erts", "dbpd"} and 0 < drops["base_rate"] < 1


def test_focus_validity_over_run_smoke(tmp_path, common_args, monkeypatch):
    out = tmp_path / "focus_over_run.json"
    module = _load("focus_validity")
    write_json, on_disk = module.common.write_json, []

    def write_and_read_back(path, payload):  # the epochs on disk after each write
        written = write_json(path, payload)
        on_disk.append([e["epoch"] for e in json.loads(written.read_text())["datasets"]["synthetic_ecg"]["epochs"]])
        return written

    monkeypatch.setattr(module.common, "write_json", write_and_read_back)
    result = module.main([*common_args, "--over_run", "--output", str(out)])
    assert on_disk == [[0], [0, 1], [0, 1]]  # after each epoch (--smoke: 2), then the final publish
    saved = json.loads(out.read_text())
    _check_machine(saved)
    entry = saved["datasets"]["synthetic_ecg"]
    epochs = entry["epochs"]
    configured, trained = entry["focus_score"], entry["focus_score"] + " (training forward)"
    for e in epochs:
        assert set(e["auroc"]) == {"top10_mean", "entropy", "gini", "topk_mass", "segments", "1 - p_true", trained}
        assert 0 <= e["val_macro_f1"] <= 1
        assert e["focus_recorded"] == entry["n_train"]  # full + always_cam: every sample's focus, every epoch
        for ci in e["auroc"].values():
            if ci["point"] is None:
                assert ci["low"] is None and ci["high"] is None
            else:
                assert 0 <= ci["low"] <= ci["point"] <= ci["high"] <= 1
            assert ci["n_pos"] == entry["n_unreliable"] and ci["n_pos"] + ci["n_neg"] == entry["n_train"]
    summary = entry["summary"]
    assert summary["scores"][configured]["last"] == epochs[-1]["auroc"][configured]["point"]
    assert set(summary["ci_low_above_half"]) == {configured, trained}
    assert out.with_suffix(".png").exists()
    assert "val macro-F1" in result["table"]


def test_scale_smoke(tmp_path, common_args):
    out = tmp_path / "scale.json"
    _load("scale").main([*common_args, "--output", str(out)])
    saved = json.loads(out.read_text())
    _check_machine(saved)
    assert saved["n"] == 160  # tiny: 96 + 32 + 32
    assert [r["kept"] for r in saved["pipeline"]] == [160, 80, 32, 8]
    assert saved["all_reads_match"]
    assert {r["mode"] for r in saved["training"]} == {"full", "erts"}
    erts = [r for r in saved["training"] if r["mode"] == "erts"]
    assert all(r["gradcam"] == r["trained"] for r in erts)
