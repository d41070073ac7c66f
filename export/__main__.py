"""``python -m export --run_dir=runs/quick [--out=DIR] [--variants=float16,int8] [--split=test] [--n_samples=64]``.

Writes the SavedModel, the ONNX model and its variants, ``parity.json`` and
``MODEL_CARD.md``, all carrying the same metadata (see ``export``), and
prints the parity tables. ``--sampling_rate``, ``--lead_names`` and
``--units`` state facts of the signal that the run's dataset does not declare
(an error where they contradict it). Exit code 2 with a one-line message for
bad flags, an unusable run folder or contradicting facts; 1 if the SavedModel
or float32 ONNX parity fails (difference above ``--tolerance`` or a different
argmax). A float16 or int8 variant outside its bounds (``export.variants.BOUNDS``)
is written, flagged in the table and the card, and does not change the exit code.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging

from erts_tf import cli, run_data, run_folder
from export import layout  # neither imports TensorFlow: flag errors stay fast


def _define_flags():
    flags.DEFINE_string("run_dir", None, "Folder of a finished run (config.json, model.keras).")
    flags.DEFINE_string("out", None, "Output folder (default <run_dir>/export).")
    flags.DEFINE_integer("opset", 17, "ONNX opset for tf2onnx.")
    flags.DEFINE_enum("split", "test", list(run_data.SPLITS), "Split whose raw records the parity checks use.")
    flags.DEFINE_integer("n_samples", 64, "Number of raw records in the parity check against Keras.")
    flags.DEFINE_float("tolerance", 1e-4, "Largest accepted |probability difference| to the Keras model.")
    flags.DEFINE_string("data_dir", None, "TFDS data dir, if not the one saved in the run's config.json.")
    flags.DEFINE_list("variants", list(layout.VARIANTS), "ONNX variants to write beside float32 (empty: none).")
    flags.DEFINE_integer("calibration_samples", 128, "Raw training records calibrating the static int8 variant.")
    flags.DEFINE_integer("latency_rounds", 3, "Side-by-side latency rounds deciding between the int8 methods.")
    flags.DEFINE_integer("threads", 1, "onnxruntime intra-op threads of the latency measurement.")
    flags.DEFINE_float("sampling_rate", None, "Sampling rate (Hz) of the training signal, if the dataset declares none.")
    flags.DEFINE_list("lead_names", None, "Lead names of the training signal in order, if the dataset declares none.")
    flags.DEFINE_string("units", None, "Units of the training signal, if the dataset declares none.")
    flags.mark_flag_as_required("run_dir")
    flags.register_validator("opset", lambda v: 13 <= v <= 18, "--opset must be in 13..18 (tf2onnx 1.17)")
    flags.register_validator("n_samples", lambda v: v > 0, "--n_samples must be > 0")
    flags.register_validator("tolerance", lambda v: v >= 0, "--tolerance must be >= 0")
    flags.register_validator("variants", lambda v: set(v) <= set(layout.VARIANTS),
                             f"--variants must be among {', '.join(layout.VARIANTS)}")
    flags.register_validator("calibration_samples", lambda v: v > 0, "--calibration_samples must be > 0")
    flags.register_validator("latency_rounds", lambda v: v > 0, "--latency_rounds must be > 0")
    flags.register_validator("threads", lambda v: v > 0, "--threads must be > 0")
    flags.register_validator("sampling_rate", lambda v: v is None or v > 0, "--sampling_rate must be > 0")


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


def variants_table(variants: dict) -> str:
    """Size, latency and parity of every ONNX variant against float32."""
    records, latency = variants["parity_records"], variants["latency"]
    lines = [f"variants against float32 on {records['n']} {records['dataset']}/{records['split']} records "
             f"(latency: onnxruntime CPU, {latency['threads']} thread(s), median of {latency['rounds']} rounds)",
             f"{'variant':<10}{'MiB':>8}{'size x':>8}" + "".join(f"{'ms b' + str(b):>9}" for b in latency["batch_sizes"])
             + f"{'agree':>8}{'dF1':>9}{'max |dp|':>10}  bounds"]
    for name, e in variants["files"].items():
        p = e.get("parity")
        lines.append(f"{name:<10}{e['size_bytes'] / 2**20:>8.2f}{e.get('size_ratio', 1.0):>8.2f}"
                     + "".join(f"{e['ms_per_record'][str(b)]:>9.3f}" for b in latency["batch_sizes"])
                     + (f"{p['argmax_agreement']:>8.3f}{p['macro_f1_diff']:>+9.4f}{p['max_abs_diff']:>10.2e}  "
                        f"{'within' if e['within_bounds'] else 'OUTSIDE: do not deploy'}" if p else "  (reference)"))
        if "choice" in e:
            lines.append(f"  int8 method {e['chosen_method']}: {e['choice']}")
    return "\n".join(lines)


def main(argv):
    from erts_tf import evaluate
    from export.errors import ExportError
    from export.run import export_run

    cli.refuse_positional(argv)
    f = flags.FLAGS
    if not f["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    facts = {"sampling_rate_hz": f.sampling_rate, "lead_names": f.lead_names, "units": f.units}
    try:
        with run_folder.lock_existing([f.run_dir], "an export"):
            result = export_run(f.run_dir, f.out, f.opset, f.split, f.n_samples, f.data_dir, f.tolerance,
                                f.variants, f.calibration_samples, facts, latency_rounds=f.latency_rounds,
                                threads=f.threads)
    except (*evaluate.ERRORS, ExportError) as error:
        cli.exit_with_error(str(error))
    print(table(result))
    print(variants_table(result["metadata"]["variants"]))
    out = f.out or run_folder.path(f.run_dir, run_folder.EXPORT)
    written = [layout.SAVED_MODEL, *(e["file"] for e in result["metadata"]["variants"]["files"].values()),
               layout.PARITY, layout.CARD]
    print(f"wrote {', '.join(os.path.join(out, w) for w in written)}")
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    _define_flags()
    app.run(main, flags_parser=cli.parse_flags)
