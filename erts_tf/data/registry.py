"""Finds the TFDS builders of ``datasets/<name>/`` by path and instantiates them.

``datasets/`` is a folder of TFDS dataset directories, not a package: each
``datasets/<name>/<name>_dataset_builder.py`` defines ``class Builder``. The
folder is looked up in ``$ERTS_TF_DATASETS`` if set, else beside the
``erts_tf`` package (the repository layout of an editable install).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pathlib
import sys
from collections.abc import Iterator
from types import ModuleType

import tensorflow_datasets as tfds

from erts_tf.data import file_lock

CORE_FEATURES = ("sample_id", "signal", "label")
# What a dataset may declare about its signal (``declared_fact``), and its key in ``info.metadata``.
DECLARED_FACTS = ("sampling_rate_hz", "lead_names", "units")
FACT_METADATA_KEYS = {"sampling_rate_hz": "sampling_rate", "lead_names": "lead_names", "units": "units"}
_FACT_CONSTANTS = {"sampling_rate_hz": "SAMPLING_RATE", "lead_names": "LEADS", "units": "UNITS"}


def datasets_root() -> pathlib.Path:
    """The folder holding one TFDS dataset directory per dataset."""
    env = os.environ.get("ERTS_TF_DATASETS")
    if env:
        return pathlib.Path(env)
    return pathlib.Path(__file__).resolve().parents[2] / "datasets"


def names() -> list[str]:
    """Names of every dataset folder that holds a ``<name>_dataset_builder.py``."""
    root = datasets_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}_dataset_builder.py").is_file())


def builder_module(name: str) -> ModuleType:
    """Imports ``datasets/<name>/<name>_dataset_builder.py`` (once) and returns it."""
    module_name = f"erts_tf_datasets.{name}.{name}_dataset_builder"
    if module_name in sys.modules:
        return sys.modules[module_name]
    folder = datasets_root() / name
    path = folder / f"{name}_dataset_builder.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"unknown dataset {name!r}: {path} does not exist; known datasets: {', '.join(names()) or 'none'}"
        )
    # TFDS resolves README.md / CITATIONS.bib through the builder's package, so the
    # folders are registered as (namespace) packages before the module is loaded.
    for package, package_path in (("erts_tf_datasets", folder.parent), (f"erts_tf_datasets.{name}", folder)):
        if package not in sys.modules:
            namespace = ModuleType(package)
            namespace.__path__ = [str(package_path)]
            namespace.__file__ = str(package_path / "__init__.py")  # read by etils.epath
            sys.modules[package] = namespace
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def builder(name: str, config: str | tfds.core.BuilderConfig | None = None, data_dir: str | None = None,
            **kwargs) -> tfds.core.DatasetBuilder:
    """Instantiates the TFDS builder of dataset ``name`` (``config`` as named in its BUILDER_CONFIGS, or a
    config object of the builder's config class: a size a benchmark generates)."""
    cls = builder_module(name).Builder
    if isinstance(config, str):
        known = [c.name for c in getattr(cls, "BUILDER_CONFIGS", [])]
        if known and config not in known:
            raise ValueError(f"dataset {name!r} has no config {config!r}; choose one of {', '.join(known)}")
    return cls(config=config, data_dir=data_dir, **kwargs)


@contextlib.contextmanager
def preparing(dataset_builder: tfds.core.DatasetBuilder) -> Iterator[None]:
    """Held while this process prepares (or replaces) the dataset of ``dataset_builder``: another process
    preparing the same one waits, then finds it prepared (TFDS would build it again and fail to rename its copy
    into place). Make a new builder inside the block, so that it reads what the other process wrote."""
    folder = pathlib.Path(dataset_builder.data_dir).parent  # <data_dir>/<name>/<config>
    with file_lock.exclusive(folder / ".erts_prepare.lock"):
        yield


def declared_fact(builder: tfds.core.DatasetBuilder, fact: str) -> tuple[object, str | None]:
    """``(value, where)`` of the first declaration of ``fact`` (one of ``DECLARED_FACTS``); ``(None, None)`` if none.

    In order: ``builder.info.metadata``, the builder config's ``sampling_rate``, the builder class's
    constants, the builder module's constants (``SAMPLING_RATE``, ``LEADS``, ``UNITS``).
    """
    metadata = builder.info.metadata or {}
    key = FACT_METADATA_KEYS[fact]
    if metadata.get(key) is not None:
        return metadata[key], f"{builder.name} info.metadata[{key!r}]"
    if fact == "sampling_rate_hz" and getattr(builder.builder_config, "sampling_rate", None) is not None:
        return builder.builder_config.sampling_rate, f"{builder.name} builder config {builder.builder_config.name!r}"
    constant = _FACT_CONSTANTS[fact]
    cls = type(builder)
    if getattr(cls, constant, None) is not None:
        return getattr(cls, constant), f"{builder.name} builder class {cls.__name__}.{constant}"
    module = sys.modules.get(cls.__module__)
    if getattr(module, constant, None) is not None:
        return getattr(module, constant), f"{builder.name} builder module constant {constant}"
    return None, None
