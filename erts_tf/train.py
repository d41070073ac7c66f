"""``python -m erts_tf.train --flagfile=configs/quickstart.cfg --output_dir=runs/quick``.

Trains a backbone with a selection mode (``training.run.run``: the run folder),
then, with ``--report`` (the default), scores the test split with bootstrap
intervals (``eval_test.json``) and writes ``report.md`` with its plots; prints
the result table. Exit code 2 with a one-line message for bad flags or an
unusable setup.

A quiet console by default: the epoch lines and the result table. TensorFlow's
C++ log lines, TFDS's progress bars and INFO lines appear with ``--verbosity=1``
(or ``-v 1``) and higher.
"""

from __future__ import annotations

import os
import sys


def _verbosity(argv: list[str]) -> int:
    """The ``--verbosity``/``-v`` value in ``argv`` (0 if absent), read before TensorFlow is imported."""
    for i, arg in enumerate(argv):
        for prefix in ("--verbosity=", "-v="):
            if arg.startswith(prefix):
                return int(arg[len(prefix):]) if arg[len(prefix):].lstrip("-").isdigit() else 0
        if arg in ("--verbosity", "-v") and i + 1 < len(argv) and argv[i + 1].lstrip("-").isdigit():
            return int(argv[i + 1])
    return 0


def _import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its C++ start-up lines (printed to file descriptor 2 before any log
    setting applies) sent to /dev/null; a Python error of the import is still raised and shown."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


if __name__ == "__main__" and _verbosity(sys.argv) < 1:
    _import_tensorflow_quietly()

from absl import app, logging  # noqa: E402

from erts_tf import cli  # noqa: E402
from erts_tf import flags as erts_flags  # noqa: E402
from erts_tf.training import distribute  # noqa: E402
from erts_tf.training import run as run_lib  # noqa: E402
from erts_tf.training.config import RunConfig  # noqa: E402

REPORT_BOOTSTRAP_ROUNDS = 1000


def evaluate_and_report(config: RunConfig) -> None:
    """``--report``: the bootstrap evaluation of the test split and ``report.md`` of a finished run."""
    from erts_tf import evaluate
    from erts_tf.report import write_run_report

    evaluate.evaluate(config.output_dir, "test", REPORT_BOOTSTRAP_ROUNDS, config.seed)
    write_run_report(config.output_dir)


def main(argv: list[str]) -> None:
    cli.refuse_positional(argv)
    if erts_flags.FLAGS.verbosity < 1:
        import tensorflow_datasets as tfds

        logging.set_verbosity(logging.WARNING)  # TFDS logs every file it reads at INFO
        tfds.disable_progress_bar()
    config = erts_flags.run_config()
    try:
        strategy = run_lib.make_strategy(config)
        summary = run_lib.run(config, strategy=strategy)
    except run_lib.RunError as error:
        cli.exit_with_error(str(error))
    if config.report and distribute.is_chief(strategy):  # the other workers wrote a scratch folder
        evaluate_and_report(config)
    print(run_lib.result_table(summary))


if __name__ == "__main__":
    app.run(main, flags_parser=erts_flags.parse)
