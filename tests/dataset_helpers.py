"""What the PhysioNet builder test modules share: dummy data written once, one build per config, TFDS conventions.

A ``tests/test_dataset_<name>.py`` module writes its dummy manual download
once (:func:`cached_manual`), builds every config it tests from it once
(:func:`built_fixture`, a module fixture ``built``) and checks the TFDS
conventions on those builds (:func:`conventions_tests`). The Challenge 2020
builders' examples are checked against their dummy records by
:func:`check_challenge_examples`; builds of the real archives are read once
into columns by :func:`split_columns`.
"""

from __future__ import annotations

import atexit
import functools
import pathlib
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pytest
import scipy.io

import physionet_dummy_data as dummy
from erts_tf.data.physionet import challenge2020

SPLITS = ("train", "validation", "test")


def cached_manual(prefix: str, write: Callable[[pathlib.Path], object]) -> Callable[[], tuple[pathlib.Path, object]]:
    """A function returning ``(manual_dir, write(manual_dir))``, written once into a folder removed at exit."""

    @functools.lru_cache(maxsize=None)
    def manual() -> tuple[pathlib.Path, object]:
        folder = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        return folder, write(folder)

    return manual


def config_name(config) -> str:
    """The name of a config given by name or as a ``BuilderConfig``."""
    return config if isinstance(config, str) else config.name


def built_fixture(name: str, configs: Sequence, manual: Callable[[], tuple]) -> Callable:
    """A module fixture ``built``: ``{config name: builder}``, each of ``configs`` built once from ``manual()``."""

    @pytest.fixture(scope="module", name="built")
    def built(tmp_path_factory):
        folder = manual()[0]
        return {
            config_name(c): dummy.build(name, c, tmp_path_factory.mktemp(f"{name}_{config_name(c)}"), folder)
            for c in configs
        }

    return built


def conventions_tests(
    builder_class, configs: Sequence, manual: Callable[[], tuple], splits: Mapping | Callable[[], Mapping]
) -> tuple[type | None, Callable | None]:
    """The TFDS conventions test of ``builder_class`` on the dummy data, for each of ``configs``.

    Returns ``(test case, None)``: a ``tfds.testing.DatasetBuilderTestCase``
    building every config from ``manual()``; or, where its dependency ``dill``
    is missing, ``(None, test function)`` doing the same checks
    (``physionet_dummy_data.check_conventions``) on the module's ``built``
    fixture. ``splits``: the examples per split, or a function giving them.
    """
    expected_splits = splits if callable(splits) else lambda: splits
    testing = dummy.tfds_testing()
    if testing is not None:

        class ConventionsTest(testing.DatasetBuilderTestCase):
            """tfds.testing conventions: every config built from the dummy manual download."""

            DATASET_CLASS = builder_class
            BUILDER_CONFIG_NAMES_TO_TEST = list(configs)

            @classmethod
            def setUpClass(cls):
                cls.EXAMPLE_DIR = str(manual()[0])
                cls.SPLITS = dict(expected_splits())
                super().setUpClass()

        return ConventionsTest, None

    by_name = {config_name(c): c for c in configs}

    @pytest.mark.parametrize("config", list(by_name))
    def test_conventions(config, built):
        """What tfds.testing.DatasetBuilderTestCase checks, where its dependency dill is missing."""
        builder = built[config]
        dummy.check_conventions(builder.name, by_name[config], manual()[0], None, expected_splits(), builder=builder)

    return None, test_conventions


def split_columns(builder, keys: Sequence[str], is_probe: Callable[[dict], bool]) -> dict[str, dict[str, np.ndarray]]:
    """Per split, ``{key: every example's value}`` for ``keys`` (text decoded), and under ``"probe"`` the signals
    of the examples ``is_probe`` picks."""
    columns = {}
    for split in SPLITS:
        rows = {key: [] for key in (*keys, "probe")}
        for ex in builder.as_dataset(split=split).as_numpy_iterator():
            for key in keys:
                rows[key].append(ex[key].decode() if isinstance(ex[key], bytes) else ex[key])
            if is_probe(ex):
                rows["probe"].append(ex["signal"])
        columns[split] = {key: np.asarray(values) for key, values in rows.items()}
    return columns


def check_challenge_examples(builder, expected: dict, length: int | None) -> dict[str, list[str]]:
    """Checks every example of a Challenge 2020 build against its dummy record; returns the record names per split.

    ``expected``: ``physionet_dummy_data.write_challenge``'s result. The
    signal must be the ``.mat``'s ``val`` in millivolts (gain 1000), cropped
    or zero-padded to ``length`` (None: the whole record, unpadded).
    """
    names = {}
    for split in SPLITS:
        found = dummy.examples(builder, split)
        names[split] = [ex["record"].decode() for ex in found]
        for ex in found:
            want = expected[ex["record"].decode()]
            assert challenge2020.UNIFIED_CLASSES[ex["label"]] == want["label"]
            assert tuple(ex["multi_hot"]) == want["multi_hot"]
            assert ex["dx"].decode() == want["dx"]
            assert int(ex["num_samples"]) == want["n"]
            val = scipy.io.loadmat(f"{want['path']}.mat")["val"]
            n = want["n"] if length is None else min(length, want["n"])
            np.testing.assert_allclose(ex["signal"][:n], val.T[:n] / 1000.0, rtol=1e-6)
            assert not ex["signal"][n:].any()
            assert ex["signal"].shape == (want["n"] if length is None else length, 12)
    return names
