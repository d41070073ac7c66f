"""``python -m erts_tf.train`` for the distribution tests, run as a subprocess.

Usage: ``python tests/distributed_worker.py --logical_cpus=N <erts_tf.train flags>``.
Splits the CPU into N logical devices (what ``--strategy=mirrored`` replicates over when
there is no GPU; TensorFlow allows this only before it initialises, hence a fresh process)
and registers the test backbone ``tiny_cnn`` before handing over to the training CLI.
"""

import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402

import tiny_backbone  # noqa: E402
from erts_tf import flags as erts_flags  # noqa: E402
from erts_tf import train  # noqa: E402


def main() -> None:
    argv = [sys.argv[0]]
    cpus = 1
    for arg in sys.argv[1:]:
        if arg.startswith("--logical_cpus="):
            cpus = int(arg.split("=", 1)[1])
        else:
            argv.append(arg)
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpus)
    tiny_backbone.register()
    logging.getLogger("erts_tf").setLevel(logging.INFO)
    app.run(train.main, argv=argv, flags_parser=erts_flags.parse)


if __name__ == "__main__":
    main()
