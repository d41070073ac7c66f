"""Multi-label runs end to end on tiny PTB-XL-like data (tests/physionet_dummy_data.py): train with selection,
evaluate (macro-AUC), export with ONNX parity on sigmoid outputs; the CPSC 2018 ``multi_hot`` loader path."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import physionet_dummy_data as dummy


@pytest.fixture(scope="module")
def ptbxl_dummy(tmp_path_factory):
    """``(data_dir, manual_dir, truth)``: the PTB-XL dummy (8 records per fold) built at 100 Hz."""
    root = tmp_path_factory.mktemp("ptbxl_multilabel")
    truth = dummy.write_ptbxl(root / "manual" / "ptb-xl-dummy", per_fold=8, rates=(100,))
    dummy.build("ptbxl", "100hz", root / "tfds", root / "manual")
    return str(root / "tfds"), str(root / "manual"), truth


def _config(tmp_path, ptbxl_dummy, **overrides):
    from erts_tf.training.config import RunConfig

    data_dir, manual_dir, _ = ptbxl_dummy
    base = dict(output_dir=str(tmp_path / "run"), dataset="ptbxl", dataset_config="100hz", data_dir=data_dir,
                manual_dir=manual_dir, task="multi", label_feature="superclasses", model="tiny_cnn", epochs=4,
                batch_size=16, warm_up_epochs=1, cam_start_epoch=1, start_revision=-1, rescore_every=1, tau=0.9,
                min_keep_frac=0.2, cb_max_ratio=10, verbose=0, report=False, tensorboard_images_every=0)
    base.update(overrides)
    return RunConfig(**base)


def test_records_without_a_label_are_left_out_and_class_names_come_from_metadata(tmp_path, ptbxl_dummy):
    from erts_tf import run_data

    config = _config(tmp_path, ptbxl_dummy)
    builder = run_data.prepare_builder(config)
    train = run_data.load_split(builder, config, "train")
    _, _, truth = ptbxl_dummy
    rows = [r for r in truth.values() if r["fold"] <= 8]
    with_label = [r for r in rows if any(r["superclasses"])]
    assert 0 < len(with_label) < len(rows)  # the dummy has records without a diagnostic statement
    assert train.n == len(with_label) and train.class_names == list(builder.info.metadata["label_sets"]
                                                                    ["superclasses"]["names"])
    assert train.label.shape == (train.n, 5) and train.label.any(axis=1).all()
    np.testing.assert_array_equal(train.label.sum(axis=0), np.sum([r["superclasses"] for r in with_label], axis=0))
    np.testing.assert_array_equal(np.arange(train.n), np.sort(np.unique(np.arange(train.n))))
    # --min_label_count above every class's count leaves no class: a clear error
    with pytest.raises(run_data.DataError, match="min_label_count"):
        run_data.load_split(builder, _config(tmp_path, ptbxl_dummy, min_label_count=10_000), "train")


def test_multilabel_epoch_level_run_on_windows_evaluate_and_export(tmp_path, ptbxl_dummy):
    """erts_infobatch at epoch level on 5 s windows (max aggregate), then evaluate and export (sigmoid, ONNX parity)."""
    import tensorflow as tf

    from erts_tf import evaluate, run_folder
    from erts_tf.data import pipeline
    from erts_tf.training import run
    from export.run import export_run
    from export.serving import saved_model_predict

    config = _config(tmp_path, ptbxl_dummy, mode="erts_infobatch", level="epoch", window_s=5.0,
                     eval_window_stride_s=2.5, window_aggregate="max", focus_every=1)
    summary = run.run(config)
    assert summary["task"] == "multi" and summary["label_feature"] == "superclasses"
    test = summary["test"]
    assert test["macro_auroc"] is not None and set(test["per_class_auroc"]) == set(summary["dataset"]["classes"])
    assert "tuned" in test and set(test["tuned"]["thresholds"]) == set(summary["dataset"]["classes"])
    phases = [e["phase"] for e in summary["epochs"]]
    assert any(p != "full" for p in phases)  # selection ran
    assert all("val_macro_auc" in e for e in summary["epochs"])
    with open(run_folder.path(config.output_dir, run_folder.AUDIT)) as f:
        rows = f.read().splitlines()
    assert len(rows) > 1 and all(r.split(",")[2] for r in rows[1:])  # labels written as classes joined by +

    result = evaluate.evaluate(config.output_dir, "test", rounds=200, seed=0)
    assert result["task"] == "multi" and result["thresholds_from"] == "validation"
    assert result["metrics"]["macro_auroc"] == pytest.approx(test["macro_auroc"], abs=1e-9)
    assert result["bootstrap"]["macro_auroc"]["point"] == pytest.approx(test["macro_auroc"], abs=1e-9)
    assert "tuned_macro_f1" in result["bootstrap"] and "macro AUROC" in evaluate.table(result)
    assert "macro-AUC test" in run.result_table(summary)
    from erts_tf.report import write_run_report

    report = write_run_report(config.output_dir)  # with the Grad-CAM figure of multi-label targets
    assert pathlib.Path(report).is_file() and "test macro AUROC" in pathlib.Path(report).read_text()
    assert (pathlib.Path(config.output_dir) / run_folder.GRADCAM_PLOT).is_file()

    exported = export_run(config.output_dir, str(tmp_path / "export"), n_samples=8, latency_rounds=1)
    assert exported["passed"], exported
    assert exported["activation"] == "sigmoid" and exported["metadata"]["output"]["activation"] == "sigmoid"
    assert exported["metadata"]["test_metrics"]["task"] == "multi"
    # the served outputs are sigmoid probabilities of the Keras logits (rows need not sum to 1), not softmax
    backbone = run_folder.load_model(config.output_dir)
    raw = np.random.default_rng(0).normal(size=(4, *backbone.inputs[0].shape[1:])).astype(np.float32)
    served = saved_model_predict(str(tmp_path / "export" / "saved_model"), raw)
    want = tf.sigmoid(backbone(pipeline.zscore(raw), training=False)).numpy()
    np.testing.assert_allclose(served, want, atol=1e-5)
    assert not np.allclose(served.sum(axis=1), 1.0, atol=1e-3)
    with open(tmp_path / "export" / "parity.json") as f:
        assert json.load(f)["onnx"]["passed"]


@pytest.mark.parametrize("mode", ["dbpd", "erts"])
def test_multilabel_batch_level_run(tmp_path, ptbxl_dummy, mode):
    from erts_tf.training import run

    config = _config(tmp_path, ptbxl_dummy, mode=mode, level="batch", epochs=3, tau=0.0)
    summary = run.run(config)
    assert summary["test"]["macro_auroc"] is not None
    cost = summary["cost"]
    assert cost["forward_score"] > 0 and cost["backward"] <= cost["forward_train"]
    assert cost["backward"] < 3 * summary["dataset"]["train"]  # batch-level selection dropped some samples


def test_cpsc2018_multi_hot_is_a_label_feature(tmp_path):
    """CPSC 2018's ``multi_hot`` (8 unified classes, names from the label) loads as multi-label targets."""
    from erts_tf import run_data
    from erts_tf.data.physionet import challenge2020
    from erts_tf.training.config import RunConfig

    manual = tmp_path / "manual"
    expected = dummy.write_challenge(manual / "training" / "cpsc_2018", prefix="A", digits=4)
    dummy.build("cpsc2018", "paper_crop", tmp_path / "tfds", manual)
    config = RunConfig(output_dir=str(tmp_path / "run"), dataset="cpsc2018", dataset_config="paper_crop",
                       data_dir=str(tmp_path / "tfds"), manual_dir=str(manual), task="multi", label_feature="multi_hot")
    builder = run_data.prepare_builder(config)
    splits = [run_data.load_split(builder, config, s) for s in run_data.SPLITS]
    assert splits[0].class_names == list(challenge2020.UNIFIED_CLASSES)
    assert all(s.label.shape[1] == len(challenge2020.UNIFIED_CLASSES) for s in splits)
    assert sum(s.n for s in splits) == len(expected)  # every dummy record carries a class (OTHER at least)
    assert sum(int(s.label.sum()) for s in splits) == sum(int(np.sum(r["multi_hot"])) for r in expected.values())
    with pytest.raises(run_data.DataError, match="not a multi-hot feature"):
        run_data.load_split(builder, RunConfig(**{**config.to_json(), "label_feature": "label"}), "train")


def test_multilabel_benchmark_smoke(tmp_path, ptbxl_dummy, tiny_backbone):
    """benchmarks/multilabel.py --smoke on the PTB-XL dummy: full and the recommended selection, a learning-curve
    point, one JSON per run (reused on rerun) that the result names instead of repeating, the table with the
    leaderboard note."""
    import importlib.util
    import sys

    benchmarks = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(benchmarks))
    spec = importlib.util.spec_from_file_location("erts_tf_benchmark_multilabel", benchmarks / "multilabel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data_dir, manual_dir, _ = ptbxl_dummy
    argv = ["--smoke", "--models", tiny_backbone, "--data_dir", data_dir, "--manual_dir", manual_dir, "--work_dir",
            str(tmp_path / "work"), "--output", str(tmp_path / "multilabel.json"), "--selection",
            "--train_fractions", "0.5"]
    result = module.main(argv)
    assert len(result["runs"]) == 4 and (tmp_path / "multilabel_runs").is_dir()
    assert len(list((tmp_path / "multilabel_runs").glob("*.json"))) == 4
    rows = {(r["mode"], r["train_fraction"]): r for r in result["aggregate"]}
    assert set(rows) == {("full", None), ("full", 0.5), ("erts_infobatch", None), ("erts_infobatch", 0.5)}
    assert rows[("erts_infobatch", None)]["auc_minus_full"] is not None
    assert rows[("full", 0.5)]["n_train"] < rows[("full", None)]["n_train"]
    assert "not the same data" in result["table"]
    saved = json.loads((tmp_path / "multilabel.json").read_text())
    assert saved["aggregate"][0]["test_macro_auc"]["point"] is not None
    import common

    assert saved["runs_dir"] == "multilabel_runs"
    assert sorted(r["file"] for r in saved["runs"]) == sorted(p.name for p in (tmp_path / "multilabel_runs").glob("*.json"))
    records = common.read_records(saved, tmp_path / "multilabel.json")
    assert [r["test_macro_auc"] for r in records] == [r["test_macro_auc"] for r in result["runs"]]
    assert all("test_probs" in r and "test_probs" not in s for r, s in zip(records, saved["runs"]))
    curves = {c["mode"]: c for c in saved["learning_curves"]}
    assert set(curves) == {"full", "erts_infobatch"}
    full_points = [(rows[("full", f)]["n_train"], rows[("full", f)]["test_macro_auc"]["point"]) for f in (0.5, None)]
    assert [(p["n_train"], p["value"]) for p in curves["full"]["points"]] == sorted(full_points)
    assert curves["full"]["extrapolated_n_train"] == 5 * rows[("full", None)]["n_train"]
    assert "Learning curve, superdiagnostic" in result["table"]
    again = module.main(argv)  # every run reused
    assert [r["test_macro_auc"] for r in again["runs"]] == [r["test_macro_auc"] for r in result["runs"]]
