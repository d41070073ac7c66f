"""Evaluation of a finished run: metrics, bootstrap intervals, the CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn import metrics as skm

from erts_tf import bootstrap, metrics

CLASSES = ["a", "b", "c", "d", "e"]


def _fake_predictions(n=200, seed=0, n_classes=5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    labels[labels == n_classes - 1] = 0  # the last class is absent: F1 0, AUROC undefined
    probs = rng.dirichlet(np.ones(n_classes), n)
    probs[np.arange(n), labels] += rng.random(n)
    probs = np.round(probs / probs.sum(1, keepdims=True), 2)  # ties, as real probabilities have
    return labels, probs


def test_bootstrap_points_follow_sklearn():
    labels, probs = _fake_predictions()
    result = bootstrap.single_label_bootstrap(labels, probs, CLASSES, rounds=200, seed=0)
    reference = metrics.classification_metrics(labels, probs, CLASSES)
    auroc = metrics.auroc_ovr(labels, probs, CLASSES)
    assert result["macro_f1"]["point"] == pytest.approx(reference["macro_f1"], abs=1e-12)
    assert result["accuracy"]["point"] == pytest.approx(reference["accuracy"], abs=1e-12)
    assert result["macro_auroc"]["point"] == pytest.approx(auroc["macro_auroc"], abs=1e-12)
    for name in CLASSES:
        for key in ("precision", "recall", "f1"):
            assert result["per_class"][name][key]["point"] == pytest.approx(reference["per_class"][name][key], abs=1e-12)
        expected = auroc["per_class_auroc"][name]
        got = result["per_class"][name]["auroc"]["point"]
        assert (got is None and expected is None) or got == pytest.approx(expected, abs=1e-12)
    assert auroc["per_class_auroc"]["e"] is None  # absent class


def test_bootstrap_rounds_follow_sklearn():
    labels, probs = _fake_predictions(n=60)
    index = next(bootstrap.resample_chunks(60, 5, seed=3))
    pred = probs.argmax(1)
    cm = metrics.confusion_counts(labels[index], pred[index], 5)
    prf = metrics.prf_by_round(labels[index], pred[index], 5)
    for r in range(5):
        y, p = labels[index[r]], pred[index[r]]
        np.testing.assert_array_equal(cm[r], skm.confusion_matrix(y, p, labels=range(5)))
        expected = skm.precision_recall_fscore_support(y, p, labels=range(5), zero_division=0)[:3]
        for key, values in zip(("precision", "recall", "f1"), expected):
            np.testing.assert_allclose(prf[key][r], values, atol=1e-12)
        auc = bootstrap.auroc_by_rank((y == 1)[None], probs[index[r], 1][None])[0]
        assert auc == pytest.approx(skm.roc_auc_score(y == 1, probs[index[r], 1]), abs=1e-12)


def test_bootstrap_ci_contains_point_and_is_seeded():
    labels, probs = _fake_predictions()
    a = bootstrap.single_label_bootstrap(labels, probs, CLASSES, rounds=1000, seed=7)
    b = bootstrap.single_label_bootstrap(labels, probs, CLASSES, rounds=1000, seed=7)
    c = bootstrap.single_label_bootstrap(labels, probs, CLASSES, rounds=1000, seed=8)
    assert a == b
    assert a["macro_f1"]["low"] != c["macro_f1"]["low"] or a["macro_f1"]["high"] != c["macro_f1"]["high"]
    for key in ("macro_f1", "accuracy", "macro_auroc"):
        assert a[key]["low"] <= a[key]["point"] <= a[key]["high"], key
        assert a[key]["defined_rounds"] == 1000
    assert a["per_class"]["e"]["auroc"]["defined_rounds"] == 0


def test_multilabel_metrics_and_bootstrap():
    rng = np.random.default_rng(1)
    targets = (rng.random((150, 5)) < 0.3).astype(int)
    scores = np.clip(targets * 0.4 + rng.random((150, 5)) * 0.7, 0, 1)
    point = metrics.multilabel_metrics(targets, scores, CLASSES)
    expected = np.mean([skm.roc_auc_score(targets[:, c], scores[:, c]) for c in range(5)])
    assert point["macro_auroc"] == pytest.approx(expected)
    assert point["macro_f1"] == pytest.approx(skm.f1_score(targets, scores >= 0.5, average="macro", zero_division=0))
    ci = bootstrap.multilabel_bootstrap(targets, scores, CLASSES, rounds=500, seed=0)
    assert ci["macro_auroc"]["point"] == pytest.approx(point["macro_auroc"], abs=1e-12)
    assert ci["macro_f1"]["point"] == pytest.approx(point["macro_f1"], abs=1e-12)
    assert ci["macro_auroc"]["low"] <= point["macro_auroc"] <= ci["macro_auroc"]["high"]
    assert "macro_f1" not in metrics.multilabel_metrics(targets, scores, CLASSES, threshold=None)


def test_evaluate_reproduces_the_training_summary(trained_run):
    from erts_tf import evaluate

    with open(os.path.join(trained_run, "summary.json")) as f:
        summary = json.load(f)
    result = evaluate.evaluate(trained_run, "test", rounds=1000, seed=0)
    assert result["metrics"]["macro_f1"] == pytest.approx(summary["test"]["macro_f1"], abs=1e-9)
    assert result["metrics"]["confusion_matrix"] == summary["test"]["confusion_matrix"]
    assert result["training_summary_macro_f1"] == summary["test"]["macro_f1"]
    ci = result["bootstrap"]["macro_f1"]
    assert ci["low"] <= result["metrics"]["macro_f1"] <= ci["high"]
    assert ci["point"] == pytest.approx(result["metrics"]["macro_f1"], abs=1e-12)
    assert "multilabel" not in result  # synthetic_ecg has no multi-hot feature
    with open(os.path.join(trained_run, "eval_test.json")) as f:
        assert json.load(f)["bootstrap"] == result["bootstrap"]
    again = evaluate.evaluate(trained_run, "test", rounds=1000, seed=0, write=False)
    assert again["bootstrap"] == result["bootstrap"]
    validation = evaluate.evaluate(trained_run, "validation", rounds=0, write=False)
    assert validation["metrics"]["macro_f1"] == pytest.approx(summary["validation"]["macro_f1"], abs=1e-9)
    assert "bootstrap" not in validation
    table = evaluate.table(result)
    assert "macro-F1" in table and "confusion matrix" in table
    # the operating point is chosen on validation, as the training run chose it
    assert result["offsets_from"] == "validation" and result["metrics"]["tuned"] == summary["test"]["tuned"]
    assert validation["metrics"]["tuned"]["offsets"] == summary["test"]["tuned"]["offsets"]
    tuned_ci = result["bootstrap"]["tuned_macro_f1"]
    assert tuned_ci["point"] == pytest.approx(result["metrics"]["tuned"]["macro_f1"], abs=1e-12)
    assert "macro-F1 (validation offsets)" in table


def _cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "erts_tf.evaluate", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize("args, message", [
    ([], "--run_dir"),
    (["--run_dir=/nonexistent/run", "--split=dev"], "--split"),
    (["--run_dir=/nonexistent/run", "--bootstrap=10"], "--bootstrap"),
    (["--run_dir=/nonexistent/run"], "no such folder"),
])
def test_cli_errors_are_one_line_with_exit_code_2(args, message):
    result = _cli(*args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_cli_on_a_folder_without_model(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"output_dir": str(tmp_path)}))
    result = _cli(f"--run_dir={tmp_path}")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "model.keras" in lines[0], result.stderr


def test_evaluate_reports_multilabel_auroc_on_ptbxl_dummy(tmp_path):
    """PTB-XL's ``superclasses`` multi-hot gives a multi-label section, flagged as from a softmax model."""
    import keras

    import physionet_dummy_data as dummy
    from erts_tf import evaluate, models

    manual = tmp_path / "manual"
    truth = dummy.write_ptbxl(manual / "ptb-xl-dummy", per_fold=2, rates=(100,))
    dummy.build("ptbxl", "100hz", tmp_path / "tfds", manual)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({
        "output_dir": str(run_dir), "dataset": "ptbxl", "dataset_config": "100hz", "data_dir": str(tmp_path / "tfds"),
        "manual_dir": str(manual), "model": "tiny_cnn"}))
    keras.utils.set_random_seed(0)
    models.build("tiny_cnn", (1000, 12), 5).save(run_dir / "model.keras")
    result = evaluate.evaluate(str(run_dir), "train", rounds=200, seed=0)
    multilabel = result["multilabel"]
    assert multilabel["feature"] == "superclasses" and "single-label" in multilabel["model_output"]
    assert "not meaningful" in multilabel["note"] and "macro_f1" not in multilabel
    n_train = sum(1 for r in truth.values() if r["fold"] <= 8)
    assert multilabel["n"] == result["metrics"]["n"] == n_train
    assert set(multilabel["per_class_auroc"]) == set(result["classes"])
    assert multilabel["bootstrap"]["macro_auroc"]["point"] == pytest.approx(multilabel["macro_auroc"], abs=1e-12)


def test_evaluate_scores_a_run_without_its_excluded_classes(tmp_path, tfds_dir, tiny_data):
    """A run trained with --exclude_classes=af is scored on the other classes, numbered as its model numbers them."""
    import keras

    from erts_tf import evaluate, models

    names = [n for n in tiny_data.test.class_names if n != "af"]
    (tmp_path / "config.json").write_text(json.dumps({
        "output_dir": str(tmp_path), "dataset_config": "tiny", "data_dir": tfds_dir, "model": "tiny_cnn",
        "exclude_classes": "af"}))
    keras.utils.set_random_seed(0)
    models.build("tiny_cnn", (1000, 12), len(names)).save(tmp_path / "model.keras")
    result = evaluate.evaluate(str(tmp_path), "test", rounds=0, write=False)
    assert result["classes"] == names and list(result["metrics"]["per_class"]) == names
    assert result["metrics"]["n"] == int((tiny_data.test.label != tiny_data.test.class_names.index("af")).sum())


def test_evaluate_scores_a_cross_validation_run_on_the_fold_it_held_out(tmp_path, tfds_dir, tiny_data):
    """A run of fold 1 of 2 (by corruption type) is scored, on its validation split, on the records that fold held out."""
    import keras
    import numpy as np

    from erts_tf import evaluate, models
    from erts_tf.data import folds

    (tmp_path / "config.json").write_text(json.dumps({
        "output_dir": str(tmp_path), "dataset_config": "tiny", "data_dir": tfds_dir, "model": "tiny_cnn",
        "cv_folds": 2, "cv_fold": 1, "cv_group_feature": "corruption"}))
    keras.utils.set_random_seed(0)
    models.build("tiny_cnn", (1000, 12), len(tiny_data.test.class_names)).save(tmp_path / "model.keras")
    groups = np.concatenate([tiny_data.train.extras["corruption"], tiny_data.validation.extras["corruption"]])
    held_out = int((folds.group_folds(groups, 2) == 1).sum())
    result = evaluate.evaluate(str(tmp_path), "validation", rounds=0, write=False)
    assert result["metrics"]["n"] == held_out != tiny_data.validation.n
