"""The model's description: one JSON, written by ``write_metadata`` into every exported artefact.

``build_metadata`` assembles it from the run folder (``config.json``,
``summary.json``, ``eval_test.json``, ``audit.csv``), the dataset's declared
signal facts (``export.dataset_facts``) and the export's own measurements
(parity, variants). ``write_metadata`` serialises it ONCE and writes that text
to ``saved_model/assets.extra/metadata.json`` and to the ``metadata_props``
(key ``erts_tf.metadata``) of every ONNX variant; ``export.card`` renders
``MODEL_CARD.md`` from the same dict. Sections:

* ``input``: name, dtype, layout ``(batch, time, leads)``, length in samples,
  sampling rate, duration, lead names in order, units (``None`` = unknown; ``sources``
  says where each fact comes from);
* ``preprocessing``: what the model does itself (non-finite -> 0, per-lead
  z-score) and what a caller must do (resample, crop/pad);
* ``output``: name, activation (softmax), class names in output order;
* ``training``: dataset, split sizes, backbone, best epoch, the run's ``config.json``;
* ``selection``: mode, level and the cost ledger's totals;
* ``test_metrics``: macro-F1, accuracy, macro AUROC and per-class figures with
  bootstrap 95 % intervals (``eval_test.json``);
* ``audit``: the training records dropped as unreliable (``low_focus``);
* ``parity``: SavedModel and ONNX against the Keras model;
* ``variants``: every ONNX file with its size and, for float16/int8, its
  parity against float32 and the bounds it is held to;
* ``erts_tf_version``, ``exported_utc``, ``format``.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os

from erts_tf import run_folder
from export import layout

FORMAT = "erts-tf model metadata 1"
METADATA_KEY = "erts_tf.metadata"
VARIANT_KEY = "erts_tf.variant"
AUDIT_TOP = 10

PREPROCESSING = {
    "in_model": [
        "NaN and +/-inf samples become 0",
        "z-score per record and per lead over time: (x - mean) / std; a flat lead "
        "(std <= 1e-6 * max(1, |mean|)) becomes 0 (erts_tf.data.pipeline.zscore_tf, the training z-score)",
    ],
    "before_model": [
        "resample to input.sampling_rate_hz (scipy.signal.resample_poly)",
        "crop to the first input.length_samples samples, or zero-pad at the end "
        "(erts_tf.data.physionet.features.fix_length, as the PhysioNet builders did for training)",
        "order the leads as input.lead_names",
    ],
    "unit_invariance": "the z-score removes each lead's offset and scale: any linear unit of a lead "
                       "(mV, uV, ADC counts with a constant baseline) gives the same output; polarity matters",
}


def erts_tf_version() -> str:
    try:
        return importlib.metadata.version("erts-tf")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (erts-tf not installed)"


def input_section(input_shape, facts: dict) -> dict:
    """The input: ``input_shape`` is the backbone's ``(time, leads)``; ``facts`` from ``dataset_facts``."""
    from export.onnx_export import INPUT_NAME

    length, n_leads = (int(d) for d in input_shape)
    rate = facts["sampling_rate_hz"]
    return {
        "name": INPUT_NAME, "dtype": "float32", "layout": "(batch, time, leads)", "shape": [None, length, n_leads],
        "length_samples": length, "leads": n_leads, "sampling_rate_hz": rate,
        "duration_s": None if rate is None else length / rate, "lead_names": facts["lead_names"],
        "units": facts["units"], "sources": facts["sources"],
    }


def output_section(class_names: list[str], activation: str = "softmax") -> dict:
    from export.onnx_export import OUTPUT_NAME

    note = ("single-label: one probability per class, in this order, summing to 1" if activation == "softmax" else
            "multi-label: an independent sigmoid probability per class, in this order (they need not sum to 1; "
            "a class is present at probability >= its threshold, 0.5 or the validation-chosen ones in test_metrics)")
    return {"name": OUTPUT_NAME, "dtype": "float32", "shape": [None, len(class_names)], "activation": activation,
            "classes": list(class_names), "note": note}


def training_section(config: dict, summary: dict | None, split_sizes: dict) -> dict:
    """Dataset, split sizes, backbone and the run's settings (``config.json`` as the run wrote it)."""
    return {"dataset": config["dataset"], "dataset_config": config.get("dataset_config"), "split_sizes": split_sizes,
            "model": config["model"], "epochs": config.get("epochs"), "seed": config.get("seed"),
            "best_epoch": summary.get("best_epoch") if summary else None,
            # the epoch whose weights the run kept (summaries before --keep_weights: the best epoch's)
            "weights_epoch": summary.get("weights_epoch", summary.get("best_epoch")) if summary else None,
            "config": config}


def selection_section(config: dict, summary: dict | None) -> dict:
    """Mode, level and the cost ledger's totals (``None`` without ``summary.json``)."""
    return {"mode": config["mode"], "level": config["level"],
            "cost": summary["cost"] if summary else None,
            "note": None if summary else f"no {run_folder.SUMMARY} in the run folder: the training cost is unknown"}


def metrics_section(evaluation: dict) -> dict:
    """Point estimates and bootstrap intervals of an ``erts_tf.evaluate`` result (``eval_test.json``)."""
    metrics, boot = evaluation["metrics"], evaluation.get("bootstrap", {})

    def ci(point, interval):
        interval = interval or {}
        return {"point": point, "low": interval.get("low"), "high": interval.get("high")}

    if evaluation.get("task") == "multi":
        per_class_ci = boot.get("per_class_auroc", {})
        return {
            "split": evaluation["split"], "n": metrics["n"], "task": "multi",
            "label_feature": evaluation["label_feature"],
            "bootstrap": {k: boot.get(k) for k in ("rounds", "seed", "level", "method")} if boot else None,
            "macro_auroc": ci(metrics["macro_auroc"], boot.get("macro_auroc")),
            "macro_f1": ci(metrics["macro_f1"], boot.get("macro_f1")),
            "macro_f1_validation_thresholds": ci(metrics["tuned"]["macro_f1"], boot.get("tuned_macro_f1")),
            "per_class": {name: {**values, "auroc_ci": ci(values["auroc"], per_class_ci.get(name)),
                                 "threshold": metrics["tuned"]["thresholds"][name],
                                 "f1_at_threshold": metrics["tuned"]["per_class_f1"][name]}
                          for name, values in metrics["per_class"].items()},
        }

    per_class_ci = boot.get("per_class", {})
    section = {
        "split": evaluation["split"], "n": metrics["n"],
        "bootstrap": {k: boot.get(k) for k in ("rounds", "seed", "level", "method")} if boot else None,
        "macro_f1": ci(metrics["macro_f1"], boot.get("macro_f1")),
        "accuracy": ci(metrics["accuracy"], boot.get("accuracy")),
        "macro_auroc": ci(metrics.get("macro_auroc"), boot.get("macro_auroc")),
        "per_class": {name: {**values, "auroc": metrics.get("per_class_auroc", {}).get(name),
                             "f1_ci": ci(values["f1"], per_class_ci.get(name, {}).get("f1"))}
                      for name, values in metrics["per_class"].items()},
        "confusion_matrix": metrics["confusion_matrix"],
    }
    tuned = metrics.get("tuned")
    if tuned:  # the operating point chosen on validation (erts_tf.evaluate)
        section["operating_point"] = {
            "chosen_on": "validation", "rule": "predicted class = argmax(log(probability) + offset)",
            "offsets": tuned["offsets"],
            "macro_f1": ci(tuned["macro_f1"], boot.get("tuned_macro_f1")),
            "per_class": {name: {k: v[k] for k in ("precision", "recall", "f1")}
                          for name, v in tuned["per_class"].items()},
        }
    if "multilabel" in evaluation:
        multilabel = evaluation["multilabel"]
        section["multilabel"] = {"feature": multilabel["feature"], "note": multilabel["note"],
                                 "macro_auroc": ci(multilabel["macro_auroc"],
                                                   multilabel.get("bootstrap", {}).get("macro_auroc"))}
    return section


def audit_section(run_dir: str, n_epochs: int, n_train: int | None, top: int = AUDIT_TOP) -> dict:
    """The training records dropped as unreliable (``low_focus``), from ``audit.csv``."""
    from erts_tf.report import audit_summary

    path = run_folder.path(run_dir, run_folder.AUDIT)
    if not os.path.isfile(path):
        return {"available": False, "note": f"no {run_folder.AUDIT} in the run folder"}
    audit = audit_summary.read_audit(path)
    records = audit_summary.low_focus_records(audit, n_epochs, top=None)
    breakdown = audit_summary.extras_breakdown(audit)
    return {
        "available": True, "reason": audit_summary.UNRELIABLE, "train_records": n_train,
        "records_dropped_as_unreliable": int(len(records)),
        "most_dropped": json.loads(records.head(top).to_json(orient="records")),
        "breakdown": {column: json.loads(table.to_json(orient="index")) for column, table in breakdown.items()},
    }


def parity_section(parity: dict) -> dict:
    """The parity figures without machine-specific paths."""
    keys = ("n", "split", "dataset", "tolerance", "onnx_opset", "saved_model", "onnx", "passed")
    return {k: parity[k] for k in keys if k in parity}


def build_metadata(run_dir: str, config: dict, class_names: list[str], input_shape, facts: dict, split_sizes: dict,
                   evaluation: dict, parity: dict, variants: dict) -> dict:
    """The whole description of an exported run (see the module docstring for the sections).

    Args:
      run_dir: the run folder (``summary.json`` and ``audit.csv`` are read if present).
      config: the run's ``config.json``.
      class_names: the output classes in order.
      input_shape: the backbone's ``(time, leads)``.
      facts: ``dataset_facts``'s result.
      split_sizes: ``{split: n}`` of the dataset.
      evaluation: the ``erts_tf.evaluate`` result on the test split.
      parity: ``check_parity``'s result (with ``split``, ``dataset``, ``onnx_opset``).
      variants: ``{variant: {...}}`` of every ONNX file (``export.variants``).
    """
    summary = run_folder.read_summary(run_dir)
    n_epochs = len(summary["epochs"]) if summary else int(config.get("epochs", 0))
    return {
        "format": FORMAT,
        "erts_tf_version": erts_tf_version(),
        "exported_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "input": input_section(input_shape, facts),
        "preprocessing": PREPROCESSING,
        "output": output_section(class_names, parity.get("activation", "softmax")),
        "training": training_section(config, summary, split_sizes),
        "selection": selection_section(config, summary),
        "test_metrics": metrics_section(evaluation),
        "audit": audit_section(run_dir, n_epochs, split_sizes.get("train")),
        "parity": parity_section(parity),
        "variants": variants,
    }


def write_metadata(metadata: dict, export_dir: str, onnx_variants) -> str:
    """Writes ``metadata`` as one JSON text into the SavedModel and every ONNX variant; returns the text.

    Args:
      metadata: ``build_metadata``'s dict.
      export_dir: the export folder (``export.layout``).
      onnx_variants: the variants (``layout.ONNX`` names) whose ``.onnx`` files get it.
    """
    import onnx

    text = json.dumps(metadata, indent=1)
    asset = os.path.join(layout.path(export_dir, layout.SAVED_MODEL), layout.SAVED_MODEL_METADATA)
    os.makedirs(os.path.dirname(asset), exist_ok=True)
    with open(asset, "w") as f:
        f.write(text + "\n")
    for variant in onnx_variants:
        path = layout.onnx_path(export_dir, variant)
        model = onnx.load(path)
        props = {p.key: p.value for p in model.metadata_props}
        props.update({METADATA_KEY: text, VARIANT_KEY: variant})
        onnx.helper.set_model_props(model, props)
        onnx.save(model, path)
    return text


def metadata_from_props(props: dict, where: str) -> dict:
    """The metadata dict from an ONNX model's ``metadata_props`` (``ValueError`` naming ``where`` if absent)."""
    if METADATA_KEY not in props:
        raise ValueError(f"{where} carries no erts-tf metadata (metadata_props key {METADATA_KEY!r}); "
                         "export the run with `python -m export`")
    return json.loads(props[METADATA_KEY])


def read_onnx_metadata(path: str) -> dict:
    """The metadata in the ``metadata_props`` of the ONNX model at ``path``."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    return metadata_from_props({p.key: p.value for p in model.metadata_props}, path)


def read_saved_model_metadata(saved_model_dir: str) -> dict:
    """The metadata beside the graph of the SavedModel at ``saved_model_dir`` (``assets.extra/metadata.json``)."""
    path = os.path.join(saved_model_dir, layout.SAVED_MODEL_METADATA)
    if not os.path.isfile(path):
        raise ValueError(f"{saved_model_dir} carries no erts-tf metadata ({path} does not exist); "
                         "export the run with `python -m export`")
    with open(path) as f:
        return json.load(f)
