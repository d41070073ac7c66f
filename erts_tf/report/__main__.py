"""``python -m erts_tf.report RUN_DIR [RUN_DIR ...] [--out=DIR]``.

One run: writes ``report.md`` and its PNGs into the run folder (or ``--out``).
Several runs: writes ``comparison.md`` and ``comparison.png`` into ``--out``
(required), evaluating runs without ``eval_test.json`` first (it is written
into their folders; ``--noevaluate_missing`` skips that), and with
``--per_run`` also each run's own report into its folder. Exit code 2 with a
one-line message for bad flags, a folder that holds no finished run, or one
that a training (or another command) holds (``run_folder.lock_existing``).
"""

from __future__ import annotations

import os

from absl import app, flags, logging

from erts_tf import cli, run_folder


def _define_flags():
    flags.DEFINE_string("out", None, "Output folder (one run: default the run folder; several runs: required).")
    flags.DEFINE_integer("top", 20, "Records listed in the audit table of a run report.")
    flags.DEFINE_integer("gradcam_examples", None, "Validation ECGs in a run report's Grad-CAM figure "
                         "(default: one per class, at most 8; 0: none).")
    flags.DEFINE_boolean("evaluate_missing", True, "Comparison: evaluate runs that have no eval_test.json.")
    flags.DEFINE_integer("bootstrap", 1000, "Bootstrap rounds when a run is evaluated here.")
    flags.DEFINE_integer("seed", 0, "Bootstrap seed when a run is evaluated here.")
    flags.DEFINE_boolean("per_run", False, "Comparison: also write each run's report.md into its folder.")
    flags.register_validator("top", lambda v: v > 0, "--top must be > 0")
    flags.register_validator("gradcam_examples", lambda v: v is None or v >= 0, "--gradcam_examples must be >= 0")
    flags.register_validator("bootstrap", lambda v: v == 0 or v >= 100, "--bootstrap must be 0 or >= 100 rounds")


def main(argv):
    f = flags.FLAGS
    if not f["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    run_dirs = argv[1:]
    if not run_dirs:
        cli.exit_with_error("give at least one run folder: python -m erts_tf.report RUN_DIR [RUN_DIR ...] [--out=DIR]")
    if len(run_dirs) > 1 and not f.out:
        cli.exit_with_error("several runs: pass --out=DIR for the comparison")
    from erts_tf import evaluate
    from erts_tf.report import report

    try:
        with run_folder.lock_existing(run_dirs, "a report"):
            _report(report, run_dirs, f)
    except (report.ReportError, *evaluate.ERRORS) as error:
        cli.exit_with_error(str(error))


def _report(report, run_dirs: list[str], f) -> None:
    """One run's report, or the comparison of several (see the module docstring); prints what it wrote."""
    if len(run_dirs) == 1:
        print(f"wrote {report.write_run_report(run_dirs[0], f.out, f.top, f.gradcam_examples)}")
        return
    for run_dir in run_dirs:
        report.load_run(run_dir)  # fail before any work if one folder is not a finished run
    path, rows = report.compare_runs(run_dirs, f.out, f.evaluate_missing, f.bootstrap, f.seed)
    print(report.comparison_table(rows))
    print(f"wrote {path}, {os.path.join(f.out, 'comparison.png')}")
    if f.per_run:
        for run_dir in run_dirs:
            print(f"wrote {report.write_run_report(run_dir, None, f.top, f.gradcam_examples)}")


if __name__ == "__main__":
    _define_flags()
    app.run(main, flags_parser=cli.parse_flags)
