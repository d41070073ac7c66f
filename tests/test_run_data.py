"""``run_data``: a run's splits as its settings define them (``--exclude_classes``), errors naming the dataset."""

import numpy as np
import pytest

from erts_tf import run_data
from erts_tf.training.config import RunConfig


def _config(tfds_dir, **settings):
    return RunConfig(output_dir="unused", dataset_config="tiny", data_dir=tfds_dir, **settings)


def test_a_split_leaves_out_the_excluded_classes(tfds_dir, tiny_data):
    config = _config(tfds_dir, exclude_classes=" af ,")
    assert run_data.excluded_classes(config) == ("af",)
    test = run_data.load_split(run_data.prepare_builder(config), config, "test")
    whole = tiny_data.test
    assert test.class_names == [n for n in whole.class_names if n != "af"]
    kept = whole.label != whole.class_names.index("af")
    assert test.n == int(kept.sum()) and test.n < whole.n
    np.testing.assert_array_equal(test.signal, whole.signal[kept])
    assert [test.class_names[c] for c in test.label] == [whole.class_names[c] for c in whole.label[kept]]


def test_without_exclusions_a_split_is_the_whole_split(tfds_dir, tiny_data):
    config = _config(tfds_dir)
    validation = run_data.load_split(run_data.prepare_builder(config), config, "validation")
    np.testing.assert_array_equal(validation.label, tiny_data.validation.label)
    np.testing.assert_array_equal(validation.signal, tiny_data.validation.signal)


def test_errors_name_the_dataset_or_the_class(tfds_dir, tiny_data, tmp_path):
    config = _config(tfds_dir, exclude_classes="no_such_class")
    with pytest.raises(run_data.DataError, match="no class no_such_class"):
        run_data.load_split(run_data.prepare_builder(config), config, "test")
    missing = RunConfig(output_dir="unused", dataset="cinc2017", data_dir=str(tmp_path / "tfds"),
                        manual_dir=str(tmp_path))
    with pytest.raises(run_data.DataError, match="^dataset 'cinc2017': "):
        run_data.prepare_builder(missing)
