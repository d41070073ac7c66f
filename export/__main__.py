"""``python -m export --run_dir=runs/quick [--out=DIR] [--opset=17] [--split=test] [--n_samples=64]``.

Writes the SavedModel, the ONNX model and ``parity.json`` (see ``export``)
and prints the parity table. Exit code 2 with a one-line message for bad
flags or an unusable run folder; 1 if parity fails (difference above
``--tolerance`` or a different argmax).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging


def _define_flags():
    flags.DEFINE_string("run_dir", None, "Folder of a finished run (config.json, model.keras).")
    flags.DEFINE_string("out", None, "Output folder (default <run_dir>/export).")
    flags.DEFINE_integer("opset", 17, "ONNX opset for tf2onnx.")
    flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Split whose raw records the parity check uses.")
    flags.DEFINE_integer("n_samples", 64, "Number of raw records in the parity check.")
    flags.DEFINE_float("tolerance", 1e-4, "Largest accepted |probability difference| to the Keras model.")
    flags.DEFINE_string("data_dir", None, "TFDS data dir, if not the one saved in the run's config.json.")
    flags.mark_flag_as_required("run_dir")
    flags.register_validator("opset", lambda v: 13 <= v <= 18, "--opset must be in 13..18 (tf2onnx 1.17)")
    flags.register_validator("n_samples", lambda v: v > 0, "--n_samples must be > 0")
    flags.register_validator("tolerance", lambda v: v >= 0, "--tolerance must be >= 0")


def _parse(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        print(f"error: {error}".splitlines()[0], file=sys.stderr)
        sys.exit(2)


def table(parity: dict) -> str:
    lines = [f"parity on {parity['n']} raw {parity['dataset']}/{parity['split']} records "
             f"(tolerance {parity['tolerance']:g}; ONNX opset {parity['onnx_opset']})",
             f"{'artefact':<14}{'max |dp|':>12}{'mean |dp|':>12}{'argmax same':>13}{'passed':>8}"]
    for key in ("saved_model", "onnx"):
        if parity.get(key):
            p = parity[key]
            lines.append(f"{key:<14}{p['max_abs_diff']:>12.2e}{p['mean_abs_diff']:>12.2e}"
                         f"{str(p['argmax_identical']):>13}{str(p['passed']):>8}")
    return "\n".join(lines)


def main(argv):
    from erts_tf.evaluate import EvaluateError
    from export.run import export_run

    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        sys.exit(2)
    f = flags.FLAGS
    if not f["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    try:
        parity = export_run(f.run_dir, f.out, f.opset, f.split, f.n_samples, f.data_dir, f.tolerance)
    except EvaluateError as error:
        print(f"error: {error}".splitlines()[0], file=sys.stderr)
        sys.exit(2)
    print(table(parity))
    out = f.out or os.path.join(f.run_dir, "export")
    print(f"wrote {os.path.join(out, 'saved_model')}, {os.path.join(out, 'model.onnx')}, {os.path.join(out, 'parity.json')}")
    sys.exit(0 if parity["passed"] else 1)


if __name__ == "__main__":
    _define_flags()
    app.run(main, flags_parser=_parse)
