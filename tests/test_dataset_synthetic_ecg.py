"""synthetic_ecg builder, with tfds.testing conventions (no download, tiny config)."""

import numpy as np
import tensorflow_datasets as tfds

from erts_tf.data import registry, synthetic

Builder = registry.builder_module("synthetic_ecg").Builder


class SyntheticEcgTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["tiny"]
    SPLITS = {"train": 96, "validation": 32, "test": 32}
    SKIP_CHECKSUMS = True
    EXAMPLE_DIR = str(registry.datasets_root() / "synthetic_ecg")  # generated: nothing to read


def test_generation_is_deterministic_and_corruptions_are_recorded():
    a = synthetic.generate(5, seed=1, corruption_rate=0.5)
    b = synthetic.generate(5, seed=1, corruption_rate=0.5)
    np.testing.assert_array_equal(a["signal"], b["signal"])
    records = [synthetic.generate(i, seed=1, corruption_rate=0.5) for i in range(300)]
    corruptions = {r["corruption"] for r in records}
    assert corruptions == set(synthetic.CORRUPTIONS)
    assert all((r["label"] != r["true_label"]) == (r["corruption"] == "label_flip") for r in records)
    assert {r["true_label"] for r in records} == set(range(len(synthetic.CLASS_NAMES)))
    assert all(r["signal"].shape == (1000, 12) and np.isfinite(r["signal"]).all() for r in records)
