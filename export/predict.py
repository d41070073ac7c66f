"""``python -m export.predict --model=runs/x/export --record=PATH [--variant=float32] [--csv=FILE]``.

Class probabilities of exported models for ECG records on disk. ``--record``
is a record (``.hea`` + ``.dat``, or a PhysioNet challenge ``.hea`` + ``.mat``;
with or without the extension) or a folder, searched recursively for
headers. ``--model`` is an export folder (its ``model.onnx``, or the
``--variant``) or an ``.onnx`` file written by ``python -m export``.

Everything the command needs to know about the model comes from the model
file itself (``metadata_props``, ``export.metadata``): the leads are picked by
name in the model's order, the signal is resampled to the model's rate and
cropped or padded to its length (``export.records.conform``); the ONNX model
(onnxruntime, CPU) does the rest, z-score included. A model trained on
windows (its run's ``--window_s``, in the metadata's ``training.config``)
scores a recording as the run's evaluation did: every evaluation window of the
whole recording (``--eval_window_stride_s`` apart), their probabilities
aggregated by ``--window_aggregate`` (``erts_tf.inference.recording_probs``). It prints one row per
record (its rate and length on disk, the predicted class, the probabilities
in the model's class order) or, with ``--csv``, writes them as CSV. The
predicted class is the most probable one (``--decision=argmax``) or, with
``--decision=validation_offsets``, the one at the operating point chosen on
the run's validation split (``argmax(log p + offset)``, the offsets in the
metadata's ``test_metrics.operating_point``; ``erts_tf.metrics.offset_probs``);
the probabilities printed are the model's either way.

A bad flag, a model without erts-tf metadata, an unreadable file, a record
that lacks a lead the model needs, or a sampling rate that cannot be
converted: exit code 2 and one line ``error: ...`` naming the file, leads or
rates.

As a library: ``predict(model, record)`` returns the rows.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from erts_tf import cli

from export import layout
from export.errors import PredictError

FIXED_COLUMNS = ("record", "sampling_rate_hz", "samples", "predicted")
DECISIONS = ("argmax", "validation_offsets")


def model_file(model: str, variant: str = layout.FLOAT32) -> str:
    """The ``.onnx`` file named by ``--model`` (a file, or an export folder and a variant)."""
    path = layout.onnx_path(model, variant) if os.path.isdir(model) else model
    if not os.path.isfile(path):
        raise PredictError(f"--model={model}: {path} does not exist" +
                           (f" (no {variant} variant in this export folder)" if os.path.isdir(model) else ""))
    return path


def load(path: str, threads: int | None = None):
    """``(onnxruntime session, metadata dict)`` of the model file ``path``."""
    from export.metadata import metadata_from_props
    from export.onnx_export import onnx_session

    try:
        session = onnx_session(path, threads)
    except Exception as error:  # onnxruntime raises its own exception types for unreadable models
        raise PredictError(f"{path}: not a readable ONNX model ({str(error).splitlines()[0]})") from error
    try:
        return session, metadata_from_props(session.get_modelmeta().custom_metadata_map, path)
    except ValueError as error:
        raise PredictError(str(error)) from error


def decision_offsets(metadata: dict, decision: str) -> np.ndarray:
    """``(n_classes,)`` log-probability offsets of ``decision`` (one of ``DECISIONS``) in the metadata's class
    order: zeros for ``argmax``, the validation-chosen ones for ``validation_offsets``."""
    classes = metadata["output"]["classes"]
    if decision == "argmax":
        return np.zeros(len(classes))
    if decision != "validation_offsets":
        raise PredictError(f"unknown --decision={decision}; choose one of {', '.join(DECISIONS)}")
    point = (metadata.get("test_metrics") or {}).get("operating_point")
    if not point:
        raise PredictError("--decision=validation_offsets: the model's metadata holds no operating point chosen on "
                           "validation (a multi-label model, or one exported before erts-tf recorded it)")
    return np.array([point["offsets"][name] for name in classes], np.float64)


def predict(model: str, record: str, variant: str = layout.FLOAT32, batch_size: int = 32,
            threads: int | None = None, decision: str = "argmax") -> dict:
    """Probabilities of the model for every record at ``record``, and the class each is given by ``decision``.

    Returns:
      ``{"model_file", "metadata", "classes", "rows"}``; each row holds ``record``,
      ``sampling_rate_hz`` and ``samples`` (as on disk), ``predicted`` and
      ``probabilities`` ``(n_classes,)`` float32 in the order of ``classes``.
    """
    from export.onnx_export import session_predict
    from export.records import conform, find_records, read_record

    from erts_tf.metrics import offset_probs

    path = model_file(model, variant)
    session, metadata = load(path, threads)
    classes = metadata["output"]["classes"]
    offsets = decision_offsets(metadata, decision)
    window = window_spec(metadata)
    stems, rows = find_records(record), []
    for start in range(0, len(stems), batch_size):
        records = [read_record(stem) for stem in stems[start:start + batch_size]]
        if window is None:
            probabilities = session_predict(session, np.stack([conform(r, metadata["input"]) for r in records]))
        else:
            from erts_tf.inference import recording_probs

            probabilities = [recording_probs(lambda w: session_predict(session, w),
                                             conform(r, metadata["input"], fixed_length=False), window)
                             for r in records]
        rows += [{"record": r.name, "sampling_rate_hz": r.sampling_rate_hz, "samples": int(r.signal.shape[0]),
                  "predicted": classes[int(np.argmax(offset_probs(np.asarray(p)[None], offsets)))],
                  "probabilities": p} for r, p in zip(records, probabilities)]
    return {"model_file": path, "metadata": metadata, "classes": classes, "decision": decision, "rows": rows}


def window_spec(metadata: dict):
    """The evaluation windows (``erts_tf.data.windows.WindowSpec``) of a model trained on windows, from its
    run's settings in ``metadata["training"]["config"]``; None for a model of whole fixed-length records."""
    config = metadata["training"].get("config") or {}
    if not config.get("window_s"):
        return None
    from erts_tf.data import windows

    return windows.from_seconds(config["window_s"], config.get("eval_window_stride_s") or 0.0,
                                config.get("window_aggregate", "mean"), metadata["input"]["sampling_rate_hz"])


def describe(result: dict) -> str:
    """One line: the model file and what it expects."""
    meta = result["metadata"]
    model_input, training = meta["input"], meta["training"]
    rate = "unknown rate" if model_input["sampling_rate_hz"] is None else f"{model_input['sampling_rate_hz']:g} Hz"
    leads = ", ".join(model_input["lead_names"] or ["lead names unknown"])
    window = window_spec(meta)
    scored = ("" if window is None else f" (recordings scored on windows every {window.stride} samples, "
              f"{window.aggregate} of their probabilities)")
    return (f"{result['model_file']}: {training['model']} trained on {training['dataset']}/{training['dataset_config']}; "
            f"input {model_input['length_samples']} samples at {rate}, leads {leads}{scored}")


def table(result: dict) -> str:
    """The rows as a plain-text table."""
    width = max([len("record"), *(len(r["record"]) for r in result["rows"])])
    names = [c[:8] for c in result["classes"]]
    lines = [describe(result),
             f"{'record':<{width}}  {'Hz':>6} {'samples':>8}  {'predicted':<10}" + "".join(f"{n:>9}" for n in names)]
    for r in result["rows"]:
        lines.append(f"{r['record']:<{width}}  {r['sampling_rate_hz']:>6g} {r['samples']:>8d}  {r['predicted'][:10]:<10}"
                     + "".join(f"{p:>9.4f}" for p in r["probabilities"]))
    return "\n".join(lines)


def write_csv(result: dict, path: str) -> None:
    """The rows as CSV: ``record, sampling_rate_hz, samples, predicted`` and one column per class."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*FIXED_COLUMNS, *result["classes"]])
        for r in result["rows"]:
            writer.writerow([*(r[c] for c in FIXED_COLUMNS), *(f"{p:.6g}" for p in r["probabilities"])])


def _define_flags():
    from absl import flags

    flags.DEFINE_string("model", None, "An export folder (python -m export) or one of its .onnx files.")
    flags.DEFINE_string("record", None, "A record (.hea/.dat, .hea/.mat; with or without extension) or a folder.")
    flags.DEFINE_enum("variant", layout.FLOAT32, list(layout.ONNX), "The ONNX variant, when --model is a folder.")
    flags.DEFINE_string("csv", None, "Write the probabilities to this CSV file instead of printing them.")
    flags.DEFINE_integer("batch_size", 32, "Records per onnxruntime call.")
    flags.DEFINE_integer("threads", 0, "onnxruntime intra-op threads (0: its default).")
    flags.DEFINE_enum("decision", "argmax", list(DECISIONS),
                      "The predicted class: the most probable, or the one at the operating point chosen on validation.")
    flags.mark_flags_as_required(["model", "record"])
    flags.register_validator("batch_size", lambda v: v > 0, "--batch_size must be > 0")
    flags.register_validator("threads", lambda v: v >= 0, "--threads must be >= 0")


def main(argv: list[str]) -> None:
    from absl import flags

    cli.refuse_positional(argv)
    f = flags.FLAGS
    try:
        result = predict(f.model, f.record, f.variant, f.batch_size, f.threads or None, f.decision)
    except PredictError as error:
        cli.exit_with_error(str(error))
    if f.csv:
        write_csv(result, f.csv)
        print(f"{describe(result)}\nwrote {len(result['rows'])} rows to {f.csv}")
    else:
        print(table(result))


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main, flags_parser=cli.parse_flags)
