"""``python -m erts_tf.train --flagfile=configs/quickstart.cfg --output_dir=runs/quick``.

Trains a backbone with a selection mode and prints the result table. Exit
code 2 with a one-line message for bad flags or an unusable setup.
"""

from __future__ import annotations

import sys

from absl import app

from erts_tf import flags as erts_flags
from erts_tf.training import run as run_lib


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        sys.exit(2)
    config = erts_flags.run_config()
    try:
        summary = run_lib.run(config)
    except run_lib.RunError as error:
        print(f"error: {error}".splitlines()[0], file=sys.stderr)
        sys.exit(2)
    print(run_lib.result_table(summary))


if __name__ == "__main__":
    app.run(main, flags_parser=erts_flags.parse)
