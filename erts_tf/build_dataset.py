"""``python -m erts_tf.build_dataset datasets/ptbxl --config=100hz --manual_dir=DIR --data_dir=DIR``.

``tfds build`` for the datasets of ``datasets/``, with its flags: the ``tfds``
command of tensorflow-datasets 4.9.10 imports Apache Beam when it starts (for
its ``convert_format`` subcommand), which this project does not install, so it
stops with ``ModuleNotFoundError: No module named 'apache_beam'`` before
building anything.

The dataset is named by its folder (an argument holding a ``/``, e.g.
``datasets/ptbxl``: the builder of that folder is built) or by its name
(``ptbxl``, looked up where ``erts_tf.data.registry`` finds the datasets).
Without ``--config`` every config is built, as ``tfds build`` does. For each
config it prints where the data are and the split sizes. An unknown dataset or
config, or a missing or incomplete manual download (the message then holds
the builder's download instructions), exits with code 2 and a one-line message.
"""

from __future__ import annotations

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow_datasets as tfds  # noqa: E402
from absl import app, flags  # noqa: E402

from erts_tf import cli  # noqa: E402
from erts_tf.data import registry  # noqa: E402

FLAGS = flags.FLAGS
USAGE = "give one dataset: its folder (datasets/ptbxl) or its name (ptbxl)"


def define_flags() -> None:
    """Defines the flags of ``tfds build`` that this command takes (when it runs, not on import,
    so that importing this module beside ``erts_tf.flags`` defines no flag twice)."""
    flags.DEFINE_string("config", None, "Config to build (e.g. 100hz); every config if not set.", short_name="c")
    flags.DEFINE_string("data_dir", None, "Where the prepared dataset is written (default ~/tensorflow_datasets).")
    flags.DEFINE_string("manual_dir", None,
                        "Folder holding the manually downloaded archive (default <download_dir>/manual).")
    flags.DEFINE_string("download_dir", None,
                        "Folder for downloads and extracted archive members (default <data_dir>/downloads).")
    flags.DEFINE_boolean("overwrite", False, "Delete the prepared copy of each config and build it again.")


def dataset_name(arg: str) -> str:
    """The name of the dataset ``arg`` names: a folder (an argument holding a ``/``), whose builder
    ``registry`` is then pointed at, or a name."""
    if "/" not in arg and os.sep not in arg:
        return arg
    folder = pathlib.Path(arg).resolve()
    if not (folder / f"{folder.name}_dataset_builder.py").is_file():
        raise FileNotFoundError(f"{arg} is not a dataset folder: it holds no {folder.name}_dataset_builder.py")
    if folder.parent != registry.datasets_root().resolve():
        os.environ["ERTS_TF_DATASETS"] = str(folder.parent)  # where registry reads the builders from
    return folder.name


def config_names(name: str, config: str | None) -> list[str | None]:
    """``[config]``, or every config of dataset ``name`` when ``config`` is None (``[None]`` if it has none)."""
    if config is not None:
        return [config]
    return [c.name for c in registry.builder_module(name).Builder.BUILDER_CONFIGS] or [None]


def prepare(name: str, config: str | None, data_dir: str | None, manual_dir: str | None,
            download_dir: str | None, overwrite: bool) -> tuple[tfds.core.DatasetBuilder, bool]:
    """Prepares one config as ``tfds build`` does; returns its builder and whether it was prepared before
    (and kept: ``overwrite`` deletes a prepared copy first)."""
    builder = registry.builder(name, config, data_dir=data_dir)
    if builder.is_prepared() and not overwrite:
        return builder, True  # nothing to write, no lock to take: a read-only data_dir works
    with registry.preparing(builder):  # a training preparing it at once waits, and so do we
        builder = registry.builder(name, config, data_dir=data_dir)
        if overwrite and builder.is_prepared():
            builder.data_path.rmtree()
            builder = registry.builder(name, config, data_dir=data_dir)
        was_prepared = builder.is_prepared()
        builder.download_and_prepare(download_dir=download_dir,
                                     download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return builder, was_prepared


def describe(builder: tfds.core.DatasetBuilder, was_prepared: bool) -> str:
    """One line: the dataset's full name, where it is, and its split sizes."""
    splits = ", ".join(f"{split} {info.num_examples}" for split, info in builder.info.splits.items())
    state = "already prepared in" if was_prepared else "prepared in"
    return f"{builder.info.full_name} {state} {builder.data_dir}: {splits}"


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        cli.exit_with_error(USAGE)
    try:
        name = dataset_name(argv[1])
        for config in config_names(name, FLAGS.config):
            builder, was_prepared = prepare(name, config, FLAGS.data_dir, FLAGS.manual_dir, FLAGS.download_dir,
                                            FLAGS.overwrite)
            print(describe(builder, was_prepared), flush=True)
    except (FileNotFoundError, ValueError) as error:
        cli.exit_with_error(" ".join(str(error).split()))  # download instructions span several lines


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.parse_flags)
