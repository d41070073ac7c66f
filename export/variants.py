"""The float16 and int8 ONNX variants: made, checked against float32 on real records, measured side by side.

For int8 three candidates are made (``export.quantize``: static QDQ
calibrated on training records, the same with the input layer(s) and the
classifier in float32, and dynamic); the one kept as
``model.int8.onnx`` is the fastest at batch 1 among those within ``BOUNDS``
(else the one that agrees most with float32 among those faster than float32,
a variant slower than float32 being of no use), measured in the same process
as float32 and float16. Each variant's entry records its size, its latency per
record, its parity with float32 (``parity.variant_parity``) on the records
given (the test split by default), the bounds and whether it is within them.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

from export import layout, quantize
from export.latency import DEFAULT_BATCH_SIZES, measure_latency
from export.onnx_export import onnx_predict
from export.parity import variant_parity

# What a variant must keep of float32's predictions on real test records (argmax agreement at least,
# |macro-F1 difference| and max |probability difference| at most).
BOUNDS = {
    "float16": {"argmax_agreement": 0.99, "macro_f1_diff": 0.01, "max_abs_diff": 0.01},
    "int8": {"argmax_agreement": 0.99, "macro_f1_diff": 0.01},
}
METHODS = {
    "float16": "float16 weights and activations (onnxruntime.transformers.float16), float32 input/output",
    "int8_static": "static QDQ: per-channel int8 weights, uint8 activations calibrated (MinMax) on training records "
                   "(per-channel Mul/Add after a convolution folded into it first)",
    "int8_static_mixed": "static QDQ as int8_static, but the weighted ops on the preprocessed input (first layer) "
                         "and before the output (classifier) kept float32",
    "int8_dynamic": "dynamic: int8 weights, activations quantized at run time with a scale per call (over the "
                    "batch: a record's output moves slightly with the other records in its batch)",
}


def within_bounds(parity: dict, bounds: dict) -> bool:
    """Whether ``variant_parity``'s figures meet ``bounds`` (see ``BOUNDS``)."""
    checks = {"argmax_agreement": lambda v, b: v >= b, "macro_f1_diff": lambda v, b: abs(v) <= b,
              "max_abs_diff": lambda v, b: v <= b}
    return all(checks[key](parity[key], bound) for key, bound in bounds.items())


def _choose_int8(entries: dict) -> tuple[str, str]:
    """The int8 method to keep and why (``entries``: ``{method: entry}``)."""
    def batch1(name):
        return entries[name]["ms_per_record"][str(DEFAULT_BATCH_SIZES[0])]

    def status(name):
        where = "within" if entries[name]["within_bounds"] else "outside"
        return f"{name} {batch1(name):.3g} ms/record at batch 1, {where} bounds"

    passing = [name for name, entry in entries.items() if entry["within_bounds"]]
    if passing:
        best = min(passing, key=batch1)
        rule = "the fastest at batch 1 of the methods within bounds"
    else:  # a smaller model that is slower than float32 helps nobody: prefer the faster ones
        faster = [n for n in entries if entries[n]["latency_ratio"][str(DEFAULT_BATCH_SIZES[0])] < 1.0] or list(entries)
        best = max(faster, key=lambda n: (entries[n]["parity"]["argmax_agreement"], -batch1(n)))
        rule = ("no method within bounds: the one that agrees most with float32 among those faster than float32 "
                "at batch 1 (among all if none is)")
    return best, f"{rule} ({'; '.join(status(n) for n in entries)})"


def make_variants(export_dir: str, variants, calibration: np.ndarray, records: np.ndarray, labels: np.ndarray,
                  class_names, candidates_dir: str | None = None, latency_rounds: int = 3, threads: int = 1) -> dict:
    """Writes the ``variants`` (``float16``, ``int8``) of ``<export_dir>/model.onnx`` and measures all of them.

    Args:
      export_dir: the export folder holding the float32 ``model.onnx``.
      variants: names from ``layout.VARIANTS``.
      calibration: raw training records ``(n, time, leads)`` for the static int8 calibration.
      records: raw records ``(n, time, leads)`` of the parity check (the test split).
      labels: their labels ``(n,)`` (for the macro-F1 difference).
      class_names: the classes in output order.
      candidates_dir: where the int8 candidates are written (default: a temporary folder, removed).
      latency_rounds, threads: of ``latency.measure_latency``.

    Returns:
      ``{"latency": {"threads", "rounds", "records", "batch_sizes", "ms_per_record"}, "files": {variant: entry}}``
      (``latency.ms_per_record``: quartiles of every model measured, the int8 candidates included); the
      float32 entry holds ``file``, ``size_bytes`` and ``ms_per_record`` (median per batch size), the others
      also ``method``, ``size_ratio``, ``latency_ratio``, ``parity``, ``bounds``, ``within_bounds`` and for
      int8 the ``candidates`` and the ``choice``.
    """
    unknown = [v for v in variants if v not in layout.VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {', '.join(layout.VARIANTS)}")
    reference_path = layout.onnx_path(export_dir)
    with tempfile.TemporaryDirectory() as tmp:
        work = candidates_dir or tmp
        os.makedirs(work, exist_ok=True)
        made = {}
        if "float16" in variants:
            made["float16"] = quantize.float16(reference_path, layout.onnx_path(export_dir, "float16"))
        if "int8" in variants:
            made["int8_static"] = quantize.int8_static(reference_path, os.path.join(work, "model.int8_static.onnx"),
                                                       calibration)
            made["int8_static_mixed"] = quantize.int8_static_mixed(
                reference_path, os.path.join(work, "model.int8_static_mixed.onnx"), calibration)
            made["int8_dynamic"] = quantize.int8_dynamic(reference_path, os.path.join(work, "model.int8_dynamic.onnx"))
        latency = measure_latency({layout.FLOAT32: reference_path, **made}, records, rounds=latency_rounds,
                                  threads=threads)
        reference = onnx_predict(reference_path, records)
        medians = {name: {b: v["median"] for b, v in per_batch.items()}
                   for name, per_batch in latency["ms_per_record"].items()}
        size = {name: os.path.getsize(path) for name, path in {layout.FLOAT32: reference_path, **made}.items()}
        entries = {}
        for name, path in made.items():
            parity = variant_parity(reference, onnx_predict(path, records), labels, class_names)
            bounds = BOUNDS["int8" if name in quantize.INT8_METHODS else name]
            entries[name] = {
                "method": METHODS[name], "size_bytes": size[name], "size_ratio": size[name] / size[layout.FLOAT32],
                "ms_per_record": medians[name],
                "latency_ratio": {b: medians[name][b] / medians[layout.FLOAT32][b] for b in medians[name]},
                "parity": parity, "bounds": bounds, "within_bounds": within_bounds(parity, bounds),
            }
        files = {layout.FLOAT32: {"file": layout.ONNX[layout.FLOAT32], "size_bytes": size[layout.FLOAT32],
                                  "ms_per_record": medians[layout.FLOAT32]}}
        if "float16" in entries:
            files["float16"] = {"file": layout.ONNX["float16"], **entries["float16"]}
        if "int8" in variants:
            candidates = {n: entries[n] for n in quantize.INT8_METHODS}
            chosen, why = _choose_int8(candidates)
            shutil.copyfile(made[chosen], layout.onnx_path(export_dir, "int8"))
            files["int8"] = {"file": layout.ONNX["int8"], **entries[chosen], "chosen_method": chosen, "choice": why,
                             "candidates": candidates}
    return {"latency": {**latency, "batch_sizes": list(DEFAULT_BATCH_SIZES)}, "files": files}
