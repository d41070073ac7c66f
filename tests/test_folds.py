"""``folds``: patient-wise cross-validation folds, and ``run_data``'s folds of the pooled train and validation splits."""

import numpy as np
import pytest

from erts_tf import run_data
from erts_tf.data import folds
from erts_tf.training.config import RunConfig


def test_groups_are_dealt_to_folds_in_sorted_order_whole():
    groups = np.array([b"209", b"101", b"118", b"101", b"220", b"209", b"106"])
    fold_of = folds.group_folds(groups, 2)
    # sorted groups 101, 106, 118, 209, 220 -> folds 0, 1, 0, 1, 0
    np.testing.assert_array_equal(fold_of, [1, 0, 0, 0, 0, 1, 1])
    assert folds.fold_group_names(groups, 2, 0) == ["101", "118", "220"]
    assert folds.fold_group_names(groups, 2, 1) == ["106", "209"]
    shuffled = np.random.default_rng(0).permutation(len(groups))
    np.testing.assert_array_equal(folds.group_folds(groups[shuffled], 2), fold_of[shuffled])


@pytest.mark.parametrize("n_folds", [0, 1, 4])
def test_fold_counts_outside_two_to_the_number_of_groups_are_refused(n_folds):
    with pytest.raises(ValueError, match="fold|group"):
        folds.group_folds(np.array([1, 2, 3, 3]), n_folds)


def _config(tfds_dir, **settings):
    return RunConfig(output_dir="unused", dataset_config="tiny", data_dir=tfds_dir, **settings)


def test_a_fold_holds_out_its_groups_of_the_pooled_train_and_validation_splits(tfds_dir, tiny_data):
    pooled_label = np.concatenate([tiny_data.train.label, tiny_data.validation.label])
    pooled_signal = np.concatenate([tiny_data.train.signal, tiny_data.validation.signal])
    pooled_group = np.concatenate([tiny_data.train.extras["corruption"], tiny_data.validation.extras["corruption"]])
    n_groups = len(np.unique(pooled_group))
    assert n_groups >= 2
    held_out_total = 0
    for fold in range(2):
        config = _config(tfds_dir, cv_folds=2, cv_fold=fold, cv_group_feature="corruption")
        builder = run_data.prepare_builder(config)
        train, held_out, test = run_data.load_splits(builder, config)
        expected = folds.group_folds(pooled_group, 2) == fold
        np.testing.assert_array_equal(held_out.label, pooled_label[expected])
        np.testing.assert_array_equal(held_out.signal, pooled_signal[expected])
        np.testing.assert_array_equal(train.signal, pooled_signal[~expected])
        assert not set(np.unique(train.extras["corruption"])) & set(np.unique(held_out.extras["corruption"]))
        np.testing.assert_array_equal(test.signal, tiny_data.test.signal)  # the test split is never touched
        np.testing.assert_array_equal(run_data.load_split(builder, config, "validation").label, held_out.label)
        held_out_total += held_out.n
    assert held_out_total == len(pooled_label)


def test_a_fold_of_a_feature_the_dataset_lacks_names_the_features(tfds_dir, tiny_data):
    config = _config(tfds_dir, cv_folds=2, cv_fold=0, cv_group_feature="patient")
    with pytest.raises(run_data.DataError, match="'patient' is not one of its per-sample features.*corruption"):
        run_data.load_splits(run_data.prepare_builder(config), config)


def test_a_fold_outside_the_folds_is_refused(tfds_dir, tiny_data):
    config = _config(tfds_dir, cv_folds=2, cv_fold=2, cv_group_feature="corruption")
    with pytest.raises(run_data.DataError, match="--cv_fold=2 is not a fold of --cv_folds=2"):
        run_data.load_splits(run_data.prepare_builder(config), config)
