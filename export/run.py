"""``export_run``: SavedModel + ONNX + parity report for a finished run folder."""

from __future__ import annotations

import json
import os

from erts_tf.evaluate import load_model, load_run_config, prepare_builder
from export.onnx_export import DEFAULT_OPSET, export_onnx
from export.parity import DEFAULT_TOLERANCE, check_parity, raw_records


def export_run(run_dir: str, out_dir: str | None = None, opset: int = DEFAULT_OPSET, split: str = "test",
               n_samples: int = 64, data_dir: str | None = None, tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Exports ``<run_dir>/model.keras`` and checks parity on ``n_samples`` raw records of ``split``.

    Writes ``<out_dir>/saved_model/``, ``<out_dir>/model.onnx`` and
    ``<out_dir>/parity.json`` (``out_dir`` defaults to ``<run_dir>/export``);
    returns the parity dict (``erts_tf.evaluate.EvaluateError`` for an
    unusable run folder or dataset).
    """
    out_dir = out_dir or os.path.join(run_dir, "export")
    config = load_run_config(run_dir, data_dir)
    backbone = load_model(run_dir)
    from export.serving import INPUT_NAME, OUTPUT_NAME, export_saved_model  # imports TensorFlow

    os.makedirs(out_dir, exist_ok=True)
    saved_model_path = os.path.join(out_dir, "saved_model")
    onnx_path = os.path.join(out_dir, "model.onnx")
    fn = export_saved_model(backbone, saved_model_path)
    export_onnx(fn, onnx_path, opset)
    records = raw_records(prepare_builder(config), split, n_samples)
    parity = check_parity(backbone, records["signal"], saved_model_path, onnx_path, tolerance)
    parity.update(
        run_dir=os.path.abspath(run_dir), model=config.model, dataset=config.dataset, dataset_config=config.dataset_config,
        split=split, sample_ids=records["sample_id"].tolist(), input=INPUT_NAME, output=OUTPUT_NAME,
        input_shape=[None, *backbone.inputs[0].shape[1:]], onnx_opset=opset,
        artefacts={"saved_model": saved_model_path, "onnx": onnx_path},
    )
    with open(os.path.join(out_dir, "parity.json"), "w") as f:
        json.dump(parity, f, indent=1)
    return parity
