"""georgia builder (PhysioNet/CinC Challenge 2020 layout): conventions, labels and the 2 s config.

The Georgia database is not available to the project: the tests write small
records in the layout the Challenge ships (``g1/E00001.hea`` with ``#Dx:``,
``g1/E00001.mat`` with ``val``). The shared Challenge logic is tested in depth
by test_dataset_cpsc2018.py.
"""

from __future__ import annotations

import pytest

import dataset_helpers as helpers
import physionet_dummy_data as dummy
from erts_tf.data import registry
from erts_tf.data.physionet import manual_download

georgia = registry.builder_module("georgia")
CONFIGS = ("10s", "2s", "full")
DUMMY_SPLITS = {"train": 80, "validation": 10, "test": 10}


def write_dummy(manual):
    expected = dummy.write_challenge(manual / "WFDB", prefix="E", digits=5, groups=3)
    # CPSC records beside them (e.g. the whole Challenge extracted) are not Georgia's.
    dummy.write_challenge(manual / "cpsc_2018", prefix="A", digits=4, per_case=1)
    return expected


dummy_manual = helpers.cached_manual("georgia_dummy_", write_dummy)
built = helpers.built_fixture("georgia", CONFIGS, dummy_manual)
TestGeorgiaBuilder, test_conventions = helpers.conventions_tests(georgia.Builder, CONFIGS, dummy_manual, DUMMY_SPLITS)


@pytest.mark.parametrize("config, length", [("2s", 1000), ("10s", 5000), ("full", None)])
def test_dummy_values(config, length, built):
    _, expected = dummy_manual()
    builder = built[config]
    names = helpers.check_challenge_examples(builder, expected, length)
    for split_names in names.values():
        assert split_names == sorted(split_names) and all(n.startswith("E") for n in split_names)
    assert sorted(n for split_names in names.values() for n in split_names) == sorted(expected)
    assert builder.info.features["signal"].shape == (length, 12)


def test_missing_data_names_the_challenge_page(tmp_path):
    manual = tmp_path / "manual"
    dummy.write_challenge(manual, prefix="A", digits=4, per_case=1)  # only CPSC records
    with pytest.raises(
        manual_download.ManualDataError, match=r"georgia: no records .*E\\d\{5\}.*physionet\.org/content/challenge-2020"
    ):
        dummy.build("georgia", "10s", tmp_path / "data", manual)
