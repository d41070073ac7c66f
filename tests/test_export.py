"""Export: SavedModel and ONNX serve the raw signal and match the Keras model on real records."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from erts_tf import models

TOLERANCE = 1e-4
TWO_D = [name for name in models.names() if name.endswith("_2d")]


def shared_tiny_run(tmp_path_factory, tfds_dir, tiny_data):
    """One short erts run on synthetic_ecg/tiny, trained once per test session (see test_evaluate.py)."""
    from erts_tf.training import run
    from erts_tf.training.config import RunConfig

    out = tmp_path_factory.getbasetemp() / "shared_tiny_erts_run"
    if not (out / "summary.json").exists():
        config = RunConfig(output_dir=str(out), dataset_config="tiny", data_dir=tfds_dir, epochs=3, batch_size=16,
                           warm_up_epochs=1, cam_start_epoch=1, start_revision=-1, rescore_every=1, tau=0.9,
                           mode="erts", level="epoch", overwrite=True, verbose=0)
        run.run(config, tiny_data)
    return str(out)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tfds_dir, tiny_data):
    return shared_tiny_run(tmp_path_factory, tfds_dir, tiny_data)


def _check_parity(parity, n):
    assert parity["n"] == n
    for key in ("saved_model", "onnx"):
        assert parity[key]["max_abs_diff"] < TOLERANCE, (key, parity[key])
        assert parity[key]["argmax_identical"], (key, parity[key])
    assert parity["passed"]


def test_export_trained_resnet1d_matches_keras(trained_run, tmp_path):
    from erts_tf.evaluate import load_model
    from export import onnx_predict
    from export.run import export_run
    from export.serving import saved_model_predict

    out = tmp_path / "export"
    parity = export_run(trained_run, str(out), n_samples=32)
    _check_parity(parity, 32)
    assert parity["onnx_opset"] == 17 and parity["model"] == "resnet1d"
    assert json.loads((out / "parity.json").read_text())["onnx"] == parity["onnx"]

    # Dynamic batch, raw units, and the z-score's edge cases (a flat lead, a NaN) in every artefact.
    from export.parity import keras_reference

    rng = np.random.default_rng(0)
    raw = (rng.standard_normal((3, 1000, 12)) * 0.4 + 2.0).astype(np.float32)
    raw[1, :, 4] = 0.7  # flat lead
    raw[2, 10, 0] = np.nan
    reference = keras_reference(load_model(trained_run), raw)
    for got in (saved_model_predict(str(out / "saved_model"), raw), onnx_predict(str(out / "model.onnx"), raw)):
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, reference, atol=TOLERANCE)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(onnx_predict(str(out / "model.onnx"), raw[:1]), reference[:1], atol=TOLERANCE)


def _2d_params():
    """Every registered 2-D backbone; the cheapest in the quick suite, the others marked slow."""
    quick = ["mobilenetv2_2d"] if "mobilenetv2_2d" in TWO_D else TWO_D[:1]
    return [pytest.param(n, marks=() if n in quick else pytest.mark.slow) for n in TWO_D]


@pytest.mark.parametrize("name", _2d_params())
def test_export_2d_backbone_matches_keras(name, trained_run, tmp_path):
    """A 2-D backbone (lead image inside the model), untrained: tests the export path, not the weights."""
    import keras

    from export.run import export_run

    run_dir = tmp_path / name
    run_dir.mkdir()
    with open(os.path.join(trained_run, "config.json")) as f:
        config = json.load(f)
    config.update(model=name, output_dir=str(run_dir))
    (run_dir / "config.json").write_text(json.dumps(config))
    keras.utils.set_random_seed(0)
    models.build(name, (1000, 12), 5).save(run_dir / "model.keras")
    parity = export_run(str(run_dir), n_samples=8)
    _check_parity(parity, 8)


def test_export_cli(trained_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir, ignore=shutil.ignore_patterns("checkpoints", "export", "logs"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    bad = subprocess.run([sys.executable, "-m", "export", f"--run_dir={tmp_path / 'missing'}"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2
    assert [line for line in bad.stderr.splitlines() if line.startswith("error:")] == [
        f"error: --run_dir={tmp_path / 'missing'}: no such folder"]
    ok = subprocess.run([sys.executable, "-m", "export", f"--run_dir={run_dir}", "--n_samples=4"],
                        capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "onnx" in ok.stdout and (run_dir / "export" / "parity.json").exists()
    assert (run_dir / "export" / "saved_model" / "saved_model.pb").exists()
