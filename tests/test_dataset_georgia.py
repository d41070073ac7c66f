"""georgia builder (PhysioNet/CinC Challenge 2020 layout): conventions, labels and the 2 s config.

The Georgia database is not available to the project: the tests write small
records in the layout the Challenge ships (``g1/E00001.hea`` with ``#Dx:``,
``g1/E00001.mat`` with ``val``). The shared Challenge logic is tested in depth
by test_dataset_cpsc2018.py.
"""

from __future__ import annotations

import atexit
import functools
import pathlib
import shutil
import tempfile

import numpy as np
import pytest
import scipy.io

import physionet_dummy_data as dummy
from erts_tf.data import physionet, registry

georgia = registry.builder_module("georgia")
DUMMY_SPLITS = {"train": 80, "validation": 10, "test": 10}


@functools.lru_cache(maxsize=None)
def dummy_manual() -> tuple[pathlib.Path, dict]:
    manual = pathlib.Path(tempfile.mkdtemp(prefix="georgia_dummy_"))
    atexit.register(shutil.rmtree, manual, ignore_errors=True)
    expected = dummy.write_challenge(manual / "WFDB", prefix="E", digits=5, groups=3)
    # CPSC records beside them (e.g. the whole Challenge extracted) are not Georgia's.
    dummy.write_challenge(manual / "cpsc_2018", prefix="A", digits=4, per_case=1)
    return manual, expected


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Both configs built once from the dummy records."""
    manual, _ = dummy_manual()
    return {c: dummy.build("georgia", c, tmp_path_factory.mktemp(f"georgia_{c}"), manual) for c in ("10s", "2s")}


tfds_testing = dummy.tfds_testing()

if tfds_testing is not None:

    class TestGeorgiaBuilder(tfds_testing.DatasetBuilderTestCase):
        """tfds.testing conventions: both configs built from dummy records."""

        DATASET_CLASS = georgia.Builder
        SPLITS = DUMMY_SPLITS

        @classmethod
        def setUpClass(cls):
            cls.EXAMPLE_DIR = str(dummy_manual()[0])
            super().setUpClass()

else:

    @pytest.mark.parametrize("config", ["10s", "2s"])
    def test_conventions(config, built):
        """What tfds.testing.DatasetBuilderTestCase checks, where its dependency dill is missing."""
        dummy.check_conventions("georgia", config, dummy_manual()[0], None, DUMMY_SPLITS, builder=built[config])


@pytest.mark.parametrize("config, length", [("2s", 1000), ("10s", 5000)])
def test_dummy_values(config, length, built):
    manual, expected = dummy_manual()
    builder = built[config]
    seen = set()
    for split in DUMMY_SPLITS:
        found = dummy.examples(builder, split)
        names = [ex["record"].decode() for ex in found]
        assert names == sorted(names) and all(n.startswith("E") for n in names)
        seen.update(names)
        for ex in found:
            want = expected[ex["record"].decode()]
            assert physionet.UNIFIED_CLASSES[ex["label"]] == want["label"]
            assert tuple(ex["multi_hot"]) == want["multi_hot"]
            val = scipy.io.loadmat(f"{want['path']}.mat")["val"]
            n = min(length, want["n"])
            np.testing.assert_allclose(ex["signal"][:n], val.T[:n] / 1000.0, rtol=1e-6)
            assert not ex["signal"][n:].any()
    assert seen == set(expected)
    assert builder.info.features["signal"].shape == (length, 12)


def test_missing_data_names_the_challenge_page(tmp_path):
    manual = tmp_path / "manual"
    dummy.write_challenge(manual, prefix="A", digits=4, per_case=1)  # only CPSC records
    with pytest.raises(physionet.ManualDataError, match=r"georgia: no records .*E\\d\{5\}.*physionet\.org/content/challenge-2020"):
        dummy.build("georgia", "10s", tmp_path / "data", manual)
