"""The layout of an export folder (``<run_dir>/export`` by default): what the export writes there.

Nothing here imports TensorFlow or ONNX, so the prediction command can find
its files without them.
"""

from __future__ import annotations

import os

SAVED_MODEL = "saved_model"
# The SavedModel format leaves ``assets.extra/`` to higher-level libraries: files that travel with the
# model and that its graph does not load (the graph, and so the parity check, are unchanged by them).
SAVED_MODEL_METADATA = os.path.join("assets.extra", "metadata.json")  # inside the SavedModel folder
PARITY = "parity.json"
CARD = "MODEL_CARD.md"
# ONNX variants by name, float32 first: the reference of the others' parity figures.
ONNX = {"float32": "model.onnx", "float16": "model.float16.onnx", "int8": "model.int8.onnx"}
FLOAT32 = "float32"
VARIANTS = tuple(v for v in ONNX if v != FLOAT32)


def path(export_dir: str, name: str) -> str:
    return os.path.join(export_dir, name)


def onnx_path(export_dir: str, variant: str = FLOAT32) -> str:
    """The ONNX file of ``variant`` in ``export_dir`` (``ValueError`` for an unknown variant)."""
    if variant not in ONNX:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(ONNX)}")
    return os.path.join(export_dir, ONNX[variant])
