"""georgia: Georgia 12-lead ECG Challenge Database (PhysioNet/CinC Challenge 2020), 500 Hz (manual download).

Records ``E00001``-``E10344``: a WFDB header with a ``#Dx:`` line of SNOMED-CT
codes and a MATLAB v4 signal (``val``, int16, 12 x length). Label: the ERTS
reference's 8 unified classes (NORM, AF, LBBB, RBBB, ST, AVB, PVC, OTHER),
first mapped code in header order wins, unknown codes are OTHER; plus the
8-class ``multi_hot``. Stratified 80/10/10 split with seed 42 over the records
sorted by name (the reference's ``train_test_split`` calls). Signals are in
millivolts, cropped from the start or zero-padded at the end to the config's
length (the reference's Georgia loader keeps the first 5000 samples: config
``10s``); ``num_samples`` keeps the original length.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from erts_tf.data.physionet import challenge2020

SOURCE = challenge2020.source(
    "georgia", "Georgia 12-lead ECG Challenge Database (georgia)", ("*georgia*", "wfdb_ga*", "*training_e.*")
)


class Builder(challenge2020.Challenge2020Builder):
    """DatasetBuilder for georgia."""

    SOURCE = SOURCE
    RECORD_REGEX = r"E\d{5}"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: 8 unified classes, multi_hot, 10 s (reference) and 2 s configs."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = challenge2020.manual_download_instructions(
        "georgia", "Georgia tarball, e.g. PhysioNetChallenge2020_Training_E.tar.gz", "E00001-E10344"
    )
    BUILDER_CONFIGS = [
        challenge2020.Challenge2020Config(
            name="10s", description="First 10 s (5000 samples), zero-padded: the reference's cut.", length=5000
        ),
        challenge2020.Challenge2020Config(
            name="2s", description="First 2 s (1000 samples), like the reference's CPSC cut.", length=1000
        ),
        challenge2020.Challenge2020Config(
            name="full", description="Whole recordings (5-10 s), unpadded: train on windows (--window_s).",
            length=None,
        ),
    ]
    DEFAULT_CONFIG_NAME = "10s"

