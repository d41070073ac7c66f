"""Export: SavedModel and ONNX serve the raw signal and match the Keras model on real records."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from erts_tf import models

TOLERANCE = 1e-4
TWO_D = [name for name in models.names() if name.endswith("_2d")]


def _check_parity(parity, n):
    assert parity["n"] == n
    for key in ("saved_model", "onnx"):
        assert parity[key]["max_abs_diff"] < TOLERANCE, (key, parity[key])
        assert parity[key]["argmax_identical"], (key, parity[key])
    assert parity["passed"]


def test_export_cli_on_trained_resnet1d(trained_run, tmp_path):
    """``python -m export`` on the trained run; then every artefact against Keras on edge-case inputs."""
    from erts_tf.run_folder import load_model
    from export.onnx_export import onnx_predict
    from export.parity import keras_reference
    from export.serving import saved_model_predict

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    bad = subprocess.run([sys.executable, "-m", "export", f"--run_dir={tmp_path / 'missing'}"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2
    assert [line for line in bad.stderr.splitlines() if line.startswith("error:")] == [
        f"error: --run_dir={tmp_path / 'missing'}: no such folder"]

    out = tmp_path / "export"
    ok = subprocess.run([sys.executable, "-m", "export", f"--run_dir={trained_run}", f"--out={out}", "--n_samples=32"],
                        capture_output=True, text=True, env=env, timeout=600)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "onnx" in ok.stdout and (out / "saved_model" / "saved_model.pb").exists()
    parity = json.loads((out / "parity.json").read_text())
    _check_parity(parity, 32)
    assert parity["onnx_opset"] == 17 and parity["model"] == "resnet1d" and parity["input_shape"] == [None, 1000, 12]

    # Dynamic batch, raw units, and the z-score's edge cases (a flat lead, NaN, inf) in every artefact.
    rng = np.random.default_rng(0)
    raw = (rng.standard_normal((3, 1000, 12)) * 0.4 + 2.0).astype(np.float32)
    raw[1, :, 4] = 0.0  # flat lead (a nonzero constant: see test_flat_nonzero_lead_is_zeroed_alike)
    raw[2, 10, 0] = np.nan
    raw[0, 5, 3] = np.inf
    reference = keras_reference(load_model(trained_run), raw)
    for got in (saved_model_predict(str(out / "saved_model"), raw), onnx_predict(str(out / "model.onnx"), raw)):
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, reference, atol=TOLERANCE)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(onnx_predict(str(out / "model.onnx"), raw[:1]), reference[:1], atol=TOLERANCE)


def _2d_params():
    """Every registered 2-D backbone; the quickest to convert in the quick suite, the others marked slow."""
    quick = ["resnet18_2d"] if "resnet18_2d" in TWO_D else TWO_D[:1]
    return [pytest.param(n, marks=() if n in quick else pytest.mark.slow) for n in TWO_D]


def _calibrate_batch_norm(backbone, signal):
    """Sets every batch-norm's moving statistics to those of ``signal`` (one training-mode forward, no weight update).

    A freshly initialised deep network in inference mode gives nearly the same
    output for every input (MobileNetV2's pooled features are ~1e-12); with
    calibrated statistics its output depends on the input, so parity is tested
    on informative probabilities.
    """
    import keras

    layers = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    backbone(signal, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


@pytest.mark.parametrize("name", _2d_params())
def test_export_2d_backbone_matches_keras(name, trained_run, tiny_data, tmp_path):
    """A 2-D backbone (lead image inside the model), untrained but with calibrated batch-norm statistics."""
    import keras

    from erts_tf.run_folder import load_model
    from export.parity import keras_reference
    from export.run import export_run

    run_dir = tmp_path / name
    run_dir.mkdir()
    with open(os.path.join(trained_run, "config.json")) as f:
        config = json.load(f)
    config.update(model=name, output_dir=str(run_dir))
    (run_dir / "config.json").write_text(json.dumps(config))
    keras.utils.set_random_seed(0)
    backbone = models.build(name, (1000, 12), 5)
    _calibrate_batch_norm(backbone, tiny_data.train.signal[:16])
    backbone.save(run_dir / "model.keras")
    parity = export_run(str(run_dir), n_samples=8)
    _check_parity(parity, 8)

    raw = tiny_data.test.signal[:8] * 3.0 + 1.0  # any real-valued signal: the z-score undoes the affine map
    probs = keras_reference(load_model(str(run_dir)), raw)
    assert np.ptp(probs, axis=0).max() > 0.01, "the probabilities do not depend on the input: parity is uninformative"


def test_flat_nonzero_lead_is_zeroed_alike():
    from erts_tf.data import pipeline

    raw = np.full((1, 1000, 1), 0.7, np.float32)
    np.testing.assert_allclose(pipeline.zscore(raw), 0.0, atol=1e-5)
    np.testing.assert_allclose(pipeline.zscore_tf(raw).numpy(), 0.0, atol=1e-5)
